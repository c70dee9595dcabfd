"""Simulation-based calibration of NUTS on four paper models and a negative control.

Run by ``make sbc`` (outside ``make bench`` and CI). Each case's simulations are appended
to ``sbc-output/<case>.jsonl`` as they finish, so an interrupted run resumes where it
stopped; the rank histograms go to ``sbc-output/<case>.png``. One JSON line per case:
simulations, the smallest uniformity p-value against its Bonferroni level, whether the
case passed (the negative control must fail), the contraction of each parameter, the
fits' diagnostics and the wall time of this run.

Usage: ``python benchmarks/sbc.py [simulations] [case ...]`` (default 100, every case).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from _common import emit

import bayesmix as bm
from bayesmix.diagnostics import RHAT_MAX
from bayesmix.paper.section2 import CONVENTIONAL_PARAMS, FIG1_PARAMS, FIG3_PARAMS
from bayesmix.plots import plot_sbc

OUT = Path("sbc-output")
MODELS = Path(__file__).resolve().parents[1] / "models"


def _hsb_schools(count: int):
    hsb = bm.datasets.load_hsb()
    return hsb[hsb["school"].isin(hsb["school"].unique()[:count])]


def cases() -> dict[str, tuple[bm.Spec, object, float]]:
    """Small designs: the spec, the data whose design the simulations keep, the planted error."""
    conventional = bm.load_spec(MODELS / "conventional.toml")
    conv_data = bm.simulate(
        conventional, CONVENTIONAL_PARAMS, clusters=20, cluster_size=10, random_seed=1
    )
    fig1 = bm.load_spec(MODELS / "fig1.toml")
    fig3 = bm.load_spec(MODELS / "fig3.toml")
    return {
        "conventional": (conventional, conv_data, 1.0),
        "conventional_planted": (conventional, conv_data, 1.2),
        "fig1": (fig1, bm.simulate(fig1, FIG1_PARAMS, n=300, random_seed=1), 1.0),
        "fig3": (
            fig3,
            bm.simulate(fig3, FIG3_PARAMS, clusters=30, cluster_size=10, random_seed=1),
            1.0,
        ),
        "hsb_A2": (bm.load_spec(MODELS / "hsb_A.toml", classes=2), _hsb_schools(20), 1.0),
    }


def main() -> None:
    simulations = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    chosen = sys.argv[2:]
    OUT.mkdir(exist_ok=True)
    for case, (spec, data, factor) in cases().items():
        if chosen and case not in chosen:
            continue
        t0 = time.perf_counter()
        result = bm.sbc(
            spec,
            data,
            simulations=simulations,
            random_seed=2009,
            residual_sd_factor=factor,
            workers=2,
            out=OUT / f"{case}.jsonl",
        )
        wall = time.perf_counter() - t0
        plot_sbc(result).savefig(OUT / f"{case}.png", dpi=90)
        print(result.summary(), file=sys.stderr)
        emit(
            f"sbc_{case}",
            simulations=result.simulations,
            residual_sd_factor=factor,
            p_min=round(float(result.p_values.min()), 5),
            p_min_parameter=str(result.p_values.idxmin()),
            bonferroni_level=round(result.threshold, 6),
            passed=result.passed,
            target="passed" if factor == 1.0 else "failed",
            met=result.passed == (factor == 1.0),
            contraction={k: round(float(v), 3) for k, v in result.contraction.items()},
            rhat_max=round(float(result.fits["rhat_max"].max()), 4),
            fits_rhat_over_1_01=int((result.fits["rhat_max"] > RHAT_MAX).sum()),
            divergences=int(result.fits["divergences"].sum()),
            fit_seconds_mean=round(float(result.fits["seconds"].mean()), 2),
            wall_s=round(wall, 1),
        )


if __name__ == "__main__":
    main()
