"""Models by name from the Hugging Face Hub: `hf:OWNER/NAME` or `hf:OWNER/NAME@REVISION` becomes a
file in huggingface_hub's cache, which every command and `charrnn.load` then read as a local
checkpoint (the same safe load and header checks).

`config.json` is fetched first and the repository refused unless charrnn wrote it (a transformers
repository has the same file names), so nothing large is downloaded for a repository that is not a
charrnn model; then `model.safetensors` alone, at the commit the config came from. With
HF_HUB_OFFLINE=1 both come from the cache. Every failure is one `InputError` line saying what to do.

It does not upload (the `hf` command does), and it imports huggingface_hub only when a name is
given: recognising a name or a cached file's origin needs the standard library alone.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from charrnn.errors import InputError, install_hint

PREFIX = "hf:"
FORMAT = 1  # config.json's charrnn.format, written by `export --format hub`
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")


def is_name(spec: object) -> bool:
    """Whether a checkpoint argument names a Hub model rather than a file."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def parse(spec: str) -> tuple[str, str | None]:
    """`hf:OWNER/NAME[@REVISION]` → (OWNER/NAME, REVISION or None); a one-line error otherwise."""
    repo, _, revision = spec.removeprefix(PREFIX).partition("@")
    if (
        not _REPO.fullmatch(repo)
        or ".." in repo
        or (revision and not _REVISION.fullmatch(revision))
    ):
        raise InputError(f"{spec}: a Hub model is named hf:OWNER/NAME or hf:OWNER/NAME@REVISION")
    return repo, revision or None


def repo_name(spec: str) -> str:
    """NAME of `hf:OWNER/NAME[@REVISION]` (a served model's default name)."""
    return parse(spec)[0].split("/")[1]


def is_charrnn_config(doc: object) -> bool:
    """Whether a config.json is a charrnn model's (a transformers repository has one too)."""
    return (
        isinstance(doc, dict)
        and doc.get("library_name") == "charrnn"
        and isinstance(doc.get("charrnn"), dict)
        and doc["charrnn"].get("format") == FORMAT
    )


def origin(path: str | os.PathLike) -> dict | None:
    """The repository and commit a file in huggingface_hub's cache came from
    (`…/models--OWNER--NAME/snapshots/COMMIT/FILE`), else None."""
    parts = Path(path).parts
    for i in range(len(parts) - 3, 0, -1):
        folder = parts[i - 1]
        if parts[i] == "snapshots" and folder.startswith("models--") and "--" in folder[8:]:
            owner, name = folder[8:].split("--", 1)
            return {"repo": f"{owner}/{name}", "commit": parts[i + 1]}
    return None


def local(spec: str | os.PathLike) -> Path:
    """The local file for a checkpoint argument: a path as it is, a Hub name downloaded (or found
    in the cache)."""
    if not is_name(spec):
        return Path(spec)
    assert isinstance(spec, str)
    repo, revision = parse(spec)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        raise InputError(f"{spec}: loading from the Hub needs {install_hint('hub')}") from None
    disable_progress_bars()  # the library draws nothing; the CLI says what it loads

    def download(filename: str, rev: str | None) -> Path:
        # its retry warnings (a missing network is retried for ~25 s) would bury the one line
        log = logging.getLogger("huggingface_hub")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            return Path(hf_hub_download(repo, filename, revision=rev, library_name="charrnn"))
        except Exception as e:  # huggingface_hub's errors, mapped to one line each
            raise _explain(spec, repo, revision, filename, e) from None
        finally:
            log.setLevel(level)

    config = download("config.json", revision)
    try:
        doc = json.loads(config.read_text("utf-8"))
    except (OSError, ValueError):
        doc = None
    if not is_charrnn_config(doc):
        raise InputError(
            f"{spec}: not a charrnn model (its config.json was not written by charrnn export "
            "--format hub); nothing else was downloaded"
        )
    return download("model.safetensors", config.parent.name)  # the config's own commit


def _explain(spec: str, repo: str, revision: str | None, filename: str, e: Exception) -> InputError:
    from huggingface_hub import constants, errors

    if isinstance(e, errors.RevisionNotFoundError):
        return InputError(f"{spec}: {repo} has no revision {revision!r}")
    if isinstance(e, errors.RepositoryNotFoundError):
        return InputError(
            f"{spec}: no model repository {repo} on the Hub (a private one needs `hf auth login`)"
        )
    if isinstance(e, errors.RemoteEntryNotFoundError):
        return InputError(f"{spec}: not a charrnn model (the repository has no {filename})")
    if isinstance(e, errors.LocalEntryNotFoundError):
        if constants.HF_HUB_OFFLINE:
            return InputError(
                f"{spec}: not in the local cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is "
                "set; load it once with the network on"
            )
        return InputError(
            f"{spec}: cannot reach the Hub ({constants.ENDPOINT}) and it is not in the local "
            "cache; check the network (or HF_ENDPOINT)"
        )
    if isinstance(e, errors.HfHubHTTPError):
        status = e.response.status_code if e.response is not None else "an error"
        return InputError(f"{spec}: the Hub answered {status} for {filename}")
    if isinstance(e, OSError | ValueError):
        return InputError(f"{spec}: cannot download {filename} ({str(e).splitlines()[0][:160]})")
    raise e
