"""`hf:OWNER/NAME[@REVISION]` for every command that takes a checkpoint, with no network and no
stand-in for huggingface_hub: a real cache laid out as the library documents it
(`models--OWNER--NAME/refs/main` holding the commit with no newline, `snapshots/COMMIT/…`), read in
a subprocess with HF_HUB_CACHE and HF_HUB_OFFLINE set (the library reads them at import); "does
not exist" and "no network" point HF_ENDPOINT at a 127.0.0.1 server that answers 404, or at a
closed port. Each failure is one line with exit 2."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli
from tests.test_export_hub import small  # noqa: F401  (the module's model)

pytest.importorskip("huggingface_hub")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_env(cli, small: Path, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    """An offline environment whose cache holds alice/fox (a charrnn export) and bob/gpt (a
    repository with another library's config.json and nothing else)."""
    assert cli("export", small, "--format", "hub", "-o", "fox", "--no-web").code == 0
    cache = tmp_path / "hfcache"
    for repo, files in (
        (
            "alice/fox",
            {n: Path("fox", n).read_bytes() for n in ("config.json", "model.safetensors")},
        ),
        ("bob/gpt", {"config.json": json.dumps({"model_type": "gpt2"}).encode()}),
    ):
        folder = cache / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(COMMIT)  # no trailing newline, as the Hub's
        snap = folder / "snapshots" / COMMIT
        snap.mkdir(parents=True)
        for name, data in files.items():
            (snap / name).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return env | {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def one_line_error(r: subprocess.CompletedProcess, says: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_sample_inspect_score_viz_export_by_name(hub_env: dict, small: Path) -> None:  # noqa: F811
    local = run_cli("sample", "fox/model.safetensors", "-n", "40", "--rng-seed", "5")
    for name in ("hf:alice/fox", f"hf:alice/fox@{COMMIT}", "hf:alice/fox@main"):
        r = run_cli("sample", name, "-n", "40", "--rng-seed", "5", env=hub_env)
        assert r.returncode == 0 and r.stdout == local.stdout, r.stderr
    info = json.loads(run_cli("inspect", "hf:alice/fox", "--json", env=hub_env).stdout)
    assert info["hub"] == {"repo": "alice/fox", "commit": COMMIT}
    assert (
        f"alice/fox at commit {COMMIT}"
        in run_cli("inspect", "hf:alice/fox", env=hub_env | {"COLUMNS": "200"}).stdout
    )
    r = run_cli("score", "hf:alice/fox", "-", "--json", input="the lazy dog", env=hub_env)
    assert r.returncode == 0 and json.loads(r.stdout)["chars"] == 12, r.stderr
    r = run_cli("score", "--model", "hf:alice/fox", "-", input="the lazy dog", env=hub_env)
    assert r.returncode == 0, r.stderr
    Path("t.txt").write_text("the lazy dog jumps")
    r = run_cli("viz", "hf:alice/fox", "t.txt", "-o", "v.html", env=hub_env)
    assert r.returncode == 0 and Path("v.html").is_file(), r.stderr
    r = run_cli("export", "hf:alice/fox", "-o", "w", "--no-eval", env=hub_env)
    assert r.returncode == 0 and json.loads(Path("w/export.json").read_text())["name"] == "fox"


def test_load_serve_name_and_init_from(hub_env: dict, small: Path) -> None:  # noqa: F811
    code = (
        "import charrnn\n"
        "from charrnn.serve.models import parse_spec\n"
        "print(charrnn.load('hf:alice/fox').generate('', 30, rng_seed=5))\n"
        "print(parse_spec('hf:alice/fox')[0], parse_spec('x=hf:alice/fox')[0])\n"
        "from charrnn.errors import InputError\n"
        "try:\n"
        "    charrnn.train(resume='hf:alice/fox')\n"
        "except InputError as e:\n"
        "    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=hub_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    local = run_cli("sample", "fox/model.safetensors", "-n", "30", "--rng-seed", "5").stdout
    assert r.stdout.splitlines()[-2] == "fox x" and r.stdout.startswith(local)
    # the call fetches an hf: name for --resume as the command does, and refuses what it holds
    assert r.stdout.splitlines()[-1] == (
        "hf:alice/fox: a sampling checkpoint (no optimizer state; export --format hub writes "
        "them) cannot be resumed; start a new run from it with --init-from (init_from=) hf:alice/fox"
    )
    text = small.parent.parent / "text.txt"
    r = run_cli(
        "train", text, "--init-from", "hf:alice/fox", *TINY, "--max-steps", "2", "-o", "ft",
        "--quiet", env=hub_env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(run_cli("inspect", "ft/best.ckpt", "--json").stdout)
    assert info["init_from"]["hub"] == f"alice/fox@{COMMIT}"
    r = run_cli("export", "ft/best.ckpt", "--format", "hub", "-o", "ft-hub", "--no-web",
                "--no-samples", env=hub_env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    from huggingface_hub import ModelCard

    card = ModelCard.load(Path("ft-hub/README.md"))
    assert card.data.base_model == "alice/fox" and f"alice/fox@{COMMIT}" in card.text


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("hf:bob/gpt", "hf:bob/gpt: not a charrnn model"),
        ("hf:carol/none", "not in the local cache"),
        ("hf:alice/fox@v9", "not in the local cache"),
        ("hf:alice", "a Hub model is named hf:OWNER/NAME"),
    ],
)
def test_offline_refusals(hub_env: dict, name: str, says: str) -> None:
    one_line_error(run_cli("sample", name, "-n", "5", env=hub_env), says)


def test_missing_extra_says_how_to_get_it(hub_env: dict) -> None:
    code = (
        "import sys; sys.modules['huggingface_hub'] = None\n"  # as if it were not installed
        "sys.argv = ['charrnn', 'sample', 'hf:alice/fox']\n"
        "from charrnn.cli import main; main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=hub_env, capture_output=True, text=True)
    one_line_error(r, "pip install -e '.[hub]'")


class _NotFound(http.server.BaseHTTPRequestHandler):
    """The Hub's answer for a repository that does not exist."""

    def _answer(self) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_found() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _online(hub_env: dict, endpoint: str) -> dict:
    env = {k: v for k, v in hub_env.items() if k != "HF_HUB_OFFLINE"}
    return env | {"HF_ENDPOINT": endpoint}


def test_repository_that_does_not_exist(hub_env: dict, not_found: str) -> None:
    r = run_cli("sample", "hf:carol/none", "-n", "5", env=_online(hub_env, not_found))
    one_line_error(r, "no model repository carol/none on the Hub")


@pytest.mark.slow  # huggingface_hub retries a refused connection for about 25 s
def test_no_network(hub_env: dict, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _online(hub_env, f"http://127.0.0.1:{port}")
    one_line_error(run_cli("sample", "hf:carol/none", "-n", "5", env=env), "cannot reach the Hub")
    # a model already in the cache still loads without the network
    r = run_cli("sample", "hf:alice/fox", "-n", "5", env=env)
    assert r.returncode == 0 and len(r.stdout) == 5, r.stderr
    shutil.rmtree(tmp_path / "hfcache")
