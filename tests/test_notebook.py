"""examples/train-and-sample.ipynb runs headless, as a user would run it: prepares part of Python's
standard library, trains for the budget its first cell sets (20 s here), samples, scores and
exports; the training cell leaves one progress output, updated in place, that ends on the step and
the validation loss. The kernel is this test's own Python (a kernelspec in a temporary
JUPYTER_PATH), so it imports this checkout's charrnn."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "train-and-sample.ipynb"


def test_the_notebook_is_committed_without_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "".join(code[0]["source"]).startswith("BUDGET = ")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_notebook_trains_samples_scores_and_exports(tmp_path: Path, monkeypatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    spec = tmp_path / "jupyter" / "kernels" / "charrnn-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "charrnn test", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[0].source = 'BUDGET = "20s"'
    client = nbclient.NotebookClient(
        nb, kernel_name="charrnn-test", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    training = next(c for c in code if "charrnn.Notebook()" in c.source)
    assert [o.output_type for o in training.outputs] == ["display_data"]
    text = training.outputs[0].data["text/plain"]
    assert "step " in text and "val loss " in text and "stopped (time-budget)" in text
    assert (tmp_path / "exports" / "json-web" / "index.html").is_file()
