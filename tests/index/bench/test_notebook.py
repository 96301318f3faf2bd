"""The recall notebook runs top to bottom on the tiny model (its imports follow the lab's modules)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_notebook_executes_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    path = REPO / "notebooks" / "evaluate_recall.ipynb"
    nb = nbformat.read(path, as_version=4)
    # kernel "python3" is resolved to this interpreter (jupyter_client maps argv "python" to sys.executable)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    monkeypatch.setenv("ARTEFACT_NOTEBOOK_OUT", str(tmp_path))  # the kernel inherits the environment
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "recall@1" in outputs
    assert (tmp_path / "report" / "report.json").is_file()
