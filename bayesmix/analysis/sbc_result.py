"""The ranks of a simulation-based calibration study, their uniformity tests and summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix.diagnostics import RHAT_MAX
from bayesmix.formatting import format_table

ALPHA = 0.01
"""Family-wise level of the uniformity tests: each is held to ``ALPHA / tests`` (Bonferroni)."""


def rank_bins(ranks: int, simulations: int) -> int:
    """Bins of the rank histogram: the most bins that split the L + 1 rank values evenly,
    keep at least 5 simulations expected per bin, and number at most 20."""
    values = ranks + 1
    fits = [b for b in range(2, 21) if values % b == 0 and simulations / b >= 5]
    return max(fits) if fits else 1


@dataclass(frozen=True, eq=False)
class SBCResult:
    """Ranks of the drawn parameters among their posterior draws, one row per simulation.

    :func:`bayesmix.plots.plot_sbc` draws the rank histograms.

    Attributes
    ----------
    model : str
        The spec's name.
    records : list of dict
        Each simulation's record as written to the study's file.
    ranks : DataFrame
        Simulations x parameters (and ``loglik``, the log-likelihood given the
        parameters and school residuals): the number of the L thinned
        posterior draws below the drawn value, 0..L.
    n_ranks : int
        L.
    bins : int
        Bins of the uniformity test and the histogram.
    p_values : Series
        Per column of ``ranks``, the chi-square test of uniform bin counts.
    contraction : Series
        Per parameter, 1 - mean posterior variance / prior variance (the
        variance of the drawn values): 0 when the data teach nothing, 1 when
        they pin the parameter down. Undefined for a parameter whose prior has
        no finite variance (a variance under a half-t(3) prior on its SD),
        where the variance of the drawn values does not settle and this
        estimate can take any value.
    fits : DataFrame
        Per simulation: largest R-hat, smallest bulk ESS, divergences, seconds,
        and the warnings of its ML start (``ml_warnings``, "; "-separated, empty
        when there were none, or with ``init="prior"``).
    residual_sd_factor : float
        The planted error (1.0: none).
    """

    model: str
    records: list[dict[str, Any]]
    ranks: pd.DataFrame
    n_ranks: int
    bins: int
    p_values: pd.Series
    contraction: pd.Series
    fits: pd.DataFrame
    residual_sd_factor: float

    @classmethod
    def from_records(
        cls,
        records: list[dict[str, Any]],
        *,
        ranks: int,
        residual_sd_factor: float,
        model: str,
    ) -> SBCResult:
        """Summarise a study's records (every simulation counts)."""
        index = pd.Index([r["replication"] for r in records], name="simulation")
        table = pd.DataFrame([r["ranks"] for r in records], index=index)
        bins = rank_bins(ranks, len(records))
        width = (ranks + 1) // bins
        p_values = pd.Series(
            {
                name: float(
                    stats.chisquare(np.bincount(col.to_numpy() // width, minlength=bins)).pvalue
                )
                if bins > 1
                else float("nan")
                for name, col in table.items()
            },
            name="p_value",
        )
        truth = pd.DataFrame([r["truth"] for r in records], index=index)
        post_var = pd.DataFrame([r["post_var"] for r in records], index=index)
        contraction = (1.0 - post_var.mean() / truth.var(ddof=1)).rename("contraction")
        fits = pd.DataFrame(
            {
                key: [r[key] for r in records]
                for key in ("rhat_max", "ess_bulk_min", "divergences", "seconds")
            },
            index=index,
        )
        # records written before ML-start warnings were kept have none to show
        fits["ml_warnings"] = ["; ".join(r.get("ml_warnings", [])) for r in records]
        return cls(
            model=model,
            records=records,
            ranks=table,
            n_ranks=ranks,
            bins=bins,
            p_values=p_values,
            contraction=contraction,
            fits=fits,
            residual_sd_factor=residual_sd_factor,
        )

    @property
    def simulations(self) -> int:
        """Simulations in the study."""
        return len(self.ranks)

    @property
    def threshold(self) -> float:
        """The level each test is held to: :data:`ALPHA` over the number of tests."""
        return ALPHA / len(self.p_values)

    @property
    def passed(self) -> bool:
        """Whether every rank's uniformity test stays above :attr:`threshold` (False when
        the study has too few simulations to test, fewer than 10)."""
        return self.bins > 1 and bool((self.p_values >= self.threshold).all())

    def table(self) -> pd.DataFrame:
        """Per parameter: the uniformity p-value, whether it passes, and the contraction."""
        out = pd.DataFrame(
            {"p_value": self.p_values, "contraction": self.contraction.reindex(self.p_values.index)}
        )
        out["uniform"] = out["p_value"] >= self.threshold
        return out

    def summary(self) -> str:
        """The tests and the fits' diagnostics as text."""
        planted = (
            f", planted error: residual SD x {self.residual_sd_factor:g}"
            if self.residual_sd_factor != 1.0
            else ""
        )
        verdict = (
            f"smallest p = {self.p_values.min():.4f} (Bonferroni level {self.threshold:.5f}): "
            f"{'passed' if self.passed else 'FAILED'}"
            if self.bins > 1
            else "not tested: fewer than 10 simulations"
        )
        head = (
            f"SBC of {self.model}: {self.simulations} simulations, ranks 0..{self.n_ranks} in "
            f"{self.bins} bins{planted}\n"
            f"uniformity: {verdict}\n"
            f"fits: largest R-hat {self.fits['rhat_max'].max():.3f}, "
            f"R-hat > {RHAT_MAX} in {int((self.fits['rhat_max'] > RHAT_MAX).sum())}, "
            f"smallest bulk ESS {self.fits['ess_bulk_min'].min():.0f}, "
            f"divergences {int(self.fits['divergences'].sum())} "
            f"in {int((self.fits['divergences'] > 0).sum())} fits, "
            f"ML-start warnings in {int((self.fits['ml_warnings'] != '').sum())} fits\n"
        )
        return head + format_table(self.table().reset_index(names="parameter"))
