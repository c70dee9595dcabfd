"""The problems of an ML fit that Mplus would flag, as diagnostic records."""

from __future__ import annotations

from bayesmix.diagnostics import Diagnostic
from bayesmix.errors import (
    BoundaryWarning,
    ConvergenceWarning,
    IdentificationWarning,
    ReplicationWarning,
)
from bayesmix.ml.optimise import GRADIENT_TOL


def convergence_diagnostics(max_grad: float, exhausted: int | None) -> list[Diagnostic]:
    """A best solution that stopped at its iteration limit or short of the gradient tolerance.

    Parameters
    ----------
    max_grad : float
        Largest absolute gradient on the standardised scale, over the free parameters.
    exhausted : int or None
        The iteration limit the best start reached, if it did.
    """
    if exhausted is not None:
        return [
            Diagnostic(
                "not_converged",
                f"the best solution did not converge: its optimisation stopped at the limit "
                f"of maxiter={exhausted} iterations (max |gradient| {max_grad:.2g}); raise "
                "maxiter.",
                ConvergenceWarning,
            )
        ]
    if max_grad >= GRADIENT_TOL:
        return [
            Diagnostic(
                "not_converged",
                f"the best solution did not converge (max |gradient| {max_grad:.2g} on the "
                f"standardised scale, above {GRADIENT_TOL:g}); raise maxiter or simplify the "
                "model.",
                ConvergenceWarning,
            )
        ]
    return []


def estimate_diagnostics(
    classes: int, replicated: int, n_starts: int, singular: bool, boundary: list[str]
) -> list[Diagnostic]:
    """An unreplicated best log-likelihood, a singular information matrix, boundary variances.

    Parameters
    ----------
    classes : int
        Latent classes K; replication is checked for mixtures only.
    replicated : int
        Starts that reached the best log-likelihood.
    n_starts : int
        Starts whose optima were compared.
    singular : bool
        Whether the observed information matrix is singular.
    boundary : list of str
        Variances at the boundary 0.
    """
    found = []
    if classes > 1 and replicated < 2:
        found.append(
            Diagnostic(
                "not_replicated",
                f"the best log-likelihood was reached by only {replicated} of {n_starts} "
                "starts; it may be a local maximum: increase starts.",
                ReplicationWarning,
            )
        )
    if singular:
        found.append(
            Diagnostic(
                "singular_information",
                "the observed information matrix is singular: some parameters are not "
                "identified (standard errors set to NaN); consider fewer classes.",
                IdentificationWarning,
            )
        )
    if boundary:
        found.append(
            Diagnostic(
                "boundary",
                f"variance(s) {boundary} are at the boundary 0 (standard errors not defined); "
                "for a random effect, consider fixing its variance at 0 (drop it from "
                "random); for a class, consider fewer classes or a common residual variance.",
                BoundaryWarning,
            )
        )
    return found
