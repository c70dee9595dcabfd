"""paper_quick and paper_full: wall time of ``bayesmix paper`` on HSB, 2 cores.

Targets (issue 6): ``--quick`` under 3 minutes, the full run under 20 minutes.
Each runs the command in a fresh process (as a user would, compilation
included) with output to a temporary folder; ``python bench_paper.py quick``
runs only the quick one.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

TARGETS = {"quick": 180.0, "full": 1200.0}


def main() -> None:
    for kind in sys.argv[1:] or ["quick", "full"]:
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "bayesmix.cli", "paper", "--out", out]
            if kind == "quick":
                cmd.append("--quick")
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t0
            table = (Path(out) / "table2.csv").read_text() if done.returncode == 0 else ""
        emit(
            f"paper_{kind}",
            wall_s=round(wall, 1),
            target_s=TARGETS[kind],
            met=bool(done.returncode == 0 and wall < TARGETS[kind]),
            returncode=done.returncode,
            models=len(table.splitlines()) - 1 if table else 0,
        )


if __name__ == "__main__":
    main()
