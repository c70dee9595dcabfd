"""The problems of a posterior sample, as diagnostic records.

Checked once a fit's draws are summarised (and again when a saved fit is
loaded, from the same draws): an interrupted run, R-hat above
:data:`~bayesmix.diagnostics.RHAT_MAX`, bulk ESS below
:data:`~bayesmix.diagnostics.ESS_MIN_PER_CHAIN` per chain, divergent
transitions, chains that disagree on class labels, (almost) empty classes and
units whose PSIS-LOO is unreliable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bayesmix.diagnostics import ESS_MIN_PER_CHAIN, RHAT_MAX, Diagnostic, empty_classes
from bayesmix.errors import LabelSwitchingWarning, SamplingWarning

if TYPE_CHECKING:
    from bayesmix.results.bayes import BayesResult, LabelCheck


def posterior_diagnostics(result: BayesResult) -> tuple[Diagnostic, ...]:
    """Every problem found in a NUTS fit's draws, in the order a summary lists them.

    Parameters
    ----------
    result : BayesResult
        The fit, with its posterior table, settings, label checks, class
        probabilities and LOO.

    Returns
    -------
    tuple of Diagnostic
    """
    found = _sampling(result)
    found += _labels(result.labels, "class")
    if result.between_labels is not None:
        found += _labels(result.between_labels, "level-2 class")
    for probs, level in (
        (result.class_probabilities, "class"),
        (result.between_probabilities, "school class"),
    ):
        if probs is not None and probs.shape[1] >= 2:
            found += empty_classes(probs.sum(axis=0), probs.shape[0], level, " in the posterior")
    if result.pareto_k_bad:
        unit = "schools" if result.between_probabilities is not None else "observations"
        found.append(
            Diagnostic(
                "pareto_k",
                f"{result.pareto_k_bad} {unit} have Pareto k > {result.loo.good_k:.2f}: "
                "PSIS-LOO is unreliable for them.",
                SamplingWarning,
            )
        )
    return tuple(found)


def _sampling(result: BayesResult) -> list[Diagnostic]:
    """An interrupted run, R-hat, bulk ESS and divergences."""
    found = []
    settings, table = result.settings, result.table
    kept = settings.get("interrupted_at")
    if kept is not None:
        found.append(
            Diagnostic(
                "interrupted",
                f"sampling was interrupted: the result holds the first {kept} of "
                f"{settings['draws']} draws per chain.",
                SamplingWarning,
            )
        )
    bad_rhat = table.index[table["r_hat"] > RHAT_MAX].tolist()
    if bad_rhat:
        found.append(
            Diagnostic(
                "rhat",
                f"R-hat above {RHAT_MAX} for {bad_rhat} (max {result.rhat_max:.3f}): chains "
                "have not mixed; run longer or check the model.",
                SamplingWarning,
            )
        )
    ess_min = ESS_MIN_PER_CHAIN * settings["chains"]
    low_ess = table.index[table["ess_bulk"] < ess_min]
    if len(low_ess):
        found.append(
            Diagnostic(
                "ess",
                f"bulk ESS below {ess_min} for {low_ess.tolist()} "
                f"(min {result.ess_bulk_min:.0f}): increase draws.",
                SamplingWarning,
            )
        )
    if result.divergences:
        found.append(
            Diagnostic(
                "divergences",
                f"{result.divergences} divergent transitions: the posterior may be biased; "
                "reparameterise or tighten priors.",
                SamplingWarning,
            )
        )
    return found


def _labels(check: LabelCheck, level: str) -> list[Diagnostic]:
    """Chains whose class labels match only under a permutation."""
    if not check.switched:
        return []
    return [
        Diagnostic(
            "label_switching",
            f"chains disagree on {level} labels (matching permutations "
            f"{list(check.permutations)}): label switching between chains.",
            LabelSwitchingWarning,
        )
    ]
