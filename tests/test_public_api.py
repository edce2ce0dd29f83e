"""The public surface is the top-level package: every documented name resolves, lazily, and
`import charrnn` stays as cheap as before (no numpy, no torch)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import charrnn

ROOT = Path(__file__).resolve().parents[1]


def test_import_charrnn_loads_neither_numpy_nor_torch() -> None:
    code = "import sys, charrnn; print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(charrnn.__all__))
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(charrnn, name) is not None
    assert name in dir(charrnn)


def test_lazy_names_are_the_defining_modules_objects() -> None:
    from charrnn.infer.sampler import Options
    from charrnn.infer.score import Scorer

    assert charrnn.Options is Options and charrnn.Scorer is Scorer


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'engine'"):
        _ = charrnn.engine  # type: ignore[attr-defined]


def test_docs_use_only_public_names() -> None:
    """The README's and the API page's Python examples import from `charrnn` itself, never from a
    module path (those are internal and changed in 0.2)."""
    for page in (ROOT / "README.md", ROOT / "docs" / "python-api.md"):
        code = "\n".join(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
        assert code, page
        assert not re.search(r"from charrnn\.\w|import charrnn\.\w", code), page
        for name in re.findall(r"charrnn\.([A-Za-z_]\w*)", code):
            assert name in charrnn.__all__, f"{page.name} uses charrnn.{name}"
