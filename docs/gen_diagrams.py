"""Write the path diagram of each model in the gallery as docs/gallery/diagrams/<name>.svg.

Run from the repository root before ``mkdocs build`` (``make docs`` does); drawing needs
Graphviz's ``dot``. Models A, B and C are drawn with three student classes, as in the
paper's Fig 7; the others with the classes of their model file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bayesmix as bm
from bayesmix.plots import plot_model_diagram

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
OUT = ROOT / "docs" / "gallery" / "diagrams"

GALLERY = ("fig1", "fig3", "hsb_1", "hsb_A", "hsb_B", "hsb_C")
THREE_CLASSES = ("hsb_A", "hsb_B", "hsb_C")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in GALLERY:
        path = MODELS / f"{name}.toml"
        spec = bm.load_spec(path, classes=3) if name in THREE_CLASSES else bm.load_spec(path)
        svg = plot_model_diagram(spec).pipe(format="svg")
        target = OUT / f"{name}.svg"
        target.write_bytes(svg)
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
