"""Folders of the repository, found from this file so that no test depends on the cwd."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (the folder holding pyproject.toml)."""

MODELS = ROOT / "models"
"""The catalogue of model files users read (the same files ship inside the package)."""

REFERENCE = ROOT / "tests" / "reference"
"""Frozen figures from other tools and the scripts that made them."""

NOTEBOOKS = ROOT / "notebooks"
"""The notebooks executed by ``make notebooks``."""


def model_path(name: str) -> Path:
    """The catalogue file of model ``name`` (``"fig1"`` -> ``models/fig1.toml``)."""
    return MODELS / f"{name}.toml"
