"""Every notebook in notebooks/ executes top to bottom (with small draws), and the committed
ones carry the outputs of a full run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.support import paths
from tests.support.settings import NOTEBOOK_DRAWS

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("*.ipynb"))
EXPECTED = [
    "01_quickstart",
    "02_single_level_mixture",
    "03_level1_vs_level2_heterogeneity",
    "04_posterior_exploration",
    "05_mcmc_vs_ml",
    "06_model_selection",
]


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list:
    return [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind
    ]


def test_notebooks_are_present():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebooks_hold_a_full_run_with_figures(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), "not executed"
    assert _outputs(nb, "error") == []
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "no figure in the saved outputs"
    # the saved outputs come from a full run, not from the small CI draws
    assert "BAYESMIX_NOTEBOOK_DRAWS" in "".join(c.source for c in code)
    assert "DRAWS = 150" not in "".join(o.get("text", "") for o in _outputs(nb, "stream"))


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAYESMIX_NOTEBOOK_DRAWS", NOTEBOOK_DRAWS)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # a failing cell, including a notebook's own checks, raises here
    assert _outputs(nb, "error") == []
