"""The distribution as a user gets it: a wheel and an sdist built from this checkout install in a
fresh virtual environment with their extras (under constraints.txt: an unpinned torch is a
multi-GB CUDA build), and the installed `charrnn` command runs: --help, sample, export --format hub.

Slow (a fresh environment installs torch): 93 s on the 2-core development machine (428 s while other work loaded it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _run(*cmd: object, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw
    )


def test_wheel_and_sdist_install_and_run(tmp_path: Path, trained: Path) -> None:
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    # --no-isolation: the backend (hatchling, pinned in constraints.txt) is the one installed here,
    # so the build needs no download
    r = _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(dist.glob("charrnn_lm-*.whl"))
    sdist = next(dist.glob("charrnn_lm-*.tar.gz"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: charrnn-lm" in meta and "Provides-Extra: hub" in meta
    assert "charrnn/infer/export/assets/page.html" in names  # package data travels
    assert not any(n.startswith("tests/") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py, charrnn = env_dir / "bin" / "python", env_dir / "bin" / "charrnn"
    pip = [py, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt"]
    r = _run(*pip, f"{wheel}[serve,hub]")
    assert r.returncode == 0, r.stderr[-3000:]
    # the sdist builds and installs too (over the wheel's files; its dependencies are there)
    r = _run(*pip, "--no-deps", "--force-reinstall", sdist)
    assert r.returncode == 0, r.stderr[-3000:]

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    here = _run(py, "-c", "import charrnn; print(charrnn.__file__)", env=env, cwd=tmp_path)
    assert here.returncode == 0 and str(env_dir) in here.stdout  # the installed copy, not ROOT's
    r = _run(charrnn, "--help", env=env, cwd=tmp_path)
    assert r.returncode == 0 and "sample" in r.stdout, r.stderr
    r = _run(charrnn, "sample", trained, "-n", "50", "--rng-seed", "1", env=env, cwd=tmp_path)
    assert r.returncode == 0 and len(r.stdout) == 50, r.stderr
    hub = tmp_path / "hub"
    r = _run(charrnn, "export", trained, "--format", "hub", "-o", hub, env=env, cwd=tmp_path)
    assert r.returncode == 0 and (hub / "README.md").is_file() and (hub / "web").is_dir(), r.stderr
