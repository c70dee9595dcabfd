"""The progress log and the Markdown report of the paper's HSB run."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bayesmix.paper.tables import markdown_table
from bayesmix.results.bayes import BayesResult


@dataclass
class RunLog:
    """Progress on stdout and the lines of the Markdown report."""

    start: float = field(default_factory=time.perf_counter)
    lines: list[str] = field(default_factory=list)

    def step(self, text: str) -> None:
        """Print one progress line, stamped with the seconds since the start."""
        sys.stdout.write(f"[{time.perf_counter() - self.start:7.1f}s] {text}\n")
        sys.stdout.flush()

    def md(self, *text: str) -> None:
        """Add lines to the report."""
        self.lines.extend(text)


def save_figure(fig: Any, path: Path, log: RunLog) -> None:
    """Write a figure, close it and say so.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : Path
        Where to write it.
    log : RunLog
        The run's log.
    """
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120)
    plt.close(fig)
    log.step(f"wrote {path.name}")


@dataclass(frozen=True)
class ReportInputs:
    """What the report's sections show, as the run computed it.

    Attributes
    ----------
    table1, table2 : DataFrame
        Model 1's estimates and the models' log-likelihoods and BIC.
    table_bayes : DataFrame or None
        The NUTS fits' school-level LOO, when any model was fitted by NUTS.
    bayes : dict of str to BayesResult
        The NUTS fits by model label.
    wald_text : str
        The Wald test of B3 over A3, or empty.
    share1, share_mix : float
        Shares of schools with a positive female coefficient under model 1
        and under the interpreted mixture.
    main : str
        The label of the interpreted mixture.
    """

    table1: pd.DataFrame
    table2: pd.DataFrame
    table_bayes: pd.DataFrame | None
    bayes: dict[str, BayesResult]
    wald_text: str
    share1: float
    share_mix: float
    main: str


def add_report_sections(log: RunLog, r: ReportInputs) -> None:
    """Add Tables 1 and 2, the NUTS fits and the school effects to the report.

    Parameters
    ----------
    log : RunLog
        The run's log, whose report lines grow.
    r : ReportInputs
        What the sections show.
    """
    best = r.table2.loc[r.table2["best_bic"] == "*", "label"].tolist()
    log.md(
        "## Table 1: conventional two-level regression (model 1)",
        "",
        "ML estimates with standard errors"
        + (", beside posterior means and SDs by NUTS" if "1" in r.bayes else "")
        + ".",
        "",
        markdown_table(r.table1.reset_index(), 4),
        "",
        "## Table 2: log-likelihood and BIC of the models",
        "",
        markdown_table(r.table2, 3),
        "",
        f"BIC minimum: {', '.join(best)}. 'replicated' counts the final-stage starts that "
        "reached the best log-likelihood.",
        "",
    )
    if r.wald_text:
        log.md(r.wald_text + " (the paper prefers B3 over A3 by this test).", "")
    if r.table_bayes is not None:
        log.md(
            "## NUTS fits and leave-one-school-out cross-validation",
            "",
            "elpd by PSIS-LOO with each school's random effects integrated out for every "
            "posterior draw (predicting a new school); WAIC from the same values.",
            "",
            markdown_table(r.table_bayes, 3),
            "",
        )
        for label, b in r.bayes.items():
            log.md(
                f"* model {label}: max R-hat {b.rhat_max:.3f}, min bulk ESS "
                f"{b.ess_bulk_min:.0f}, {b.divergences} divergences, "
                f"{b.timings['sampling_s']:.0f}s sampling"
                + (f"; diagnostics: {'; '.join(map(str, b.diagnostics))}" if b.diagnostics else "")
            )
        log.md("")
    log.md(
        "## School effects (Figs 6 and 8)",
        "",
        f"Schools with a positive female coefficient: {100 * r.share1:.1f}% under model 1, "
        f"{100 * r.share_mix:.1f}% under model {r.main} (paper, NELS: 38% and 9%).",
        "",
        "![Fig 5](fig5.png)",
        "![Fig 6](fig6.png)",
        "![Fig 8](fig8.png)",
        f"![class lines](class_lines_{r.main}.png)",
        f"![membership](membership_{r.main}.png)",
        "",
    )
