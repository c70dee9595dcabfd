"""Fixed values and equalities in the optimiser's coordinates.

The optimiser works on theta (:mod:`bayesmix.model.params`) of the standardised model
(:mod:`bayesmix.data.standardise`). Standardisation keeps every constrained parameter a
function of its own standardised counterpart alone, ``user_k = A_kk natural'_k + b_k``,
so a constraint in the user's units is an affine one in theta:

* a fixed coefficient: ``theta_k = (v - b_k) / A_kk``; a fixed residual variance, whose
  theta is its log: ``theta_k = log(v / A_kk)``; a fixed school-residual variance of a
  diagonal covariance, whose theta is its Cholesky diagonal: ``theta_k = sqrt(v / A_kk)``;
* an equality of ``k`` with the group's first member ``r``: ``theta_k = (A_rr theta_r +
  b_r - b_k) / A_kk`` for coefficients, ``theta_k = theta_r + log(A_rr / A_kk)`` for
  residual variances, ``theta_k = sqrt(A_rr / A_kk) theta_r`` for school-residual
  variances.

So ``theta = M psi + m`` with ``psi`` the free parameters, one per group or
unconstrained parameter: :class:`Tie`. The likelihood, its gradient ``M' g``, the
information ``M' I M`` and the clusters' scores follow, and the delta method maps the
covariance of ``psi`` to the user's units through ``d natural / d theta M``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesmix.data.standardise import Standardisation
from bayesmix.model.constraints import Resolved, resolve

if TYPE_CHECKING:
    from bayesmix.density.quadrature import AdaptiveQuadrature

Bounds = list[tuple[float | None, float | None]]


@dataclass(frozen=True, eq=False)
class Tie:
    """``theta = matrix @ psi + offset``: the optimiser's free vector ``psi`` in theta.

    Attributes
    ----------
    matrix : ndarray
        (p, q): one column per free parameter, with one nonzero entry in each row
        that is not fixed.
    offset : ndarray
        (p,): the fixed rows' values and the equalities' shifts.
    fixed : ndarray of bool
        (p,): the rows held at a value.
    """

    matrix: np.ndarray
    offset: np.ndarray
    fixed: np.ndarray

    @property
    def n_free(self) -> int:
        """Length of ``psi``."""
        return int(self.matrix.shape[1])

    def expand(self, psi: np.ndarray) -> np.ndarray:
        """Theta from the free vector."""
        return self.matrix @ np.asarray(psi, dtype=float) + self.offset

    def project(self, theta: np.ndarray) -> np.ndarray:
        """The free vector whose theta is nearest ``theta`` (least squares): exact for a
        theta that meets the constraints, a start's nearest such point otherwise."""
        m = self.matrix
        return (m.T @ (np.asarray(theta, dtype=float) - self.offset)) / np.sum(m * m, axis=0)

    def objective(
        self, fun: Callable[[np.ndarray], tuple[float, np.ndarray]]
    ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """An objective of theta and its gradient as one of the free vector."""
        m = self.matrix

        def tied(psi: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = fun(self.expand(psi))
            return value, m.T @ np.asarray(grad)

        return tied

    def of_free(self, f: Callable[[np.ndarray], object]) -> Callable[[np.ndarray], object]:
        """A function of theta as one of the free vector."""
        return lambda psi: f(self.expand(psi))

    def bounds(self, bounds: Bounds) -> Bounds:
        """Bounds on the free vector that keep every tied theta within its own."""
        out: Bounds = []
        for j in range(self.n_free):
            rows = np.flatnonzero(self.matrix[:, j])
            lows = [
                (bounds[i][0] - self.offset[i]) / self.matrix[i, j]
                for i in rows
                if bounds[i][0] is not None
            ]
            out.append((max(lows) if lows else None, None))
        return out


def _log_rows(st: Standardisation) -> set[int]:
    """Positions whose theta is a log residual variance."""
    lay = st.layout
    if lay.log_residual:
        return set()
    sl = lay._slices()["resid"]
    return set(range(sl.start, sl.stop))


def _root_rows(st: Standardisation) -> set[int]:
    """Positions whose theta is the square root of a school-residual variance: the
    Cholesky diagonal of a diagonal covariance (or of a single residual)."""
    lay = st.layout
    sl = lay._slices()["cov"]
    return {k for k in range(sl.start, sl.stop) if lay.names[k].startswith("var(")}


def make_tie(st: Standardisation, resolved: Resolved | None = None) -> Tie | None:
    """The :class:`Tie` of a spec's constraints on a standardised design, None without
    fixed values or equalities."""
    lay = st.layout
    if resolved is None:
        resolved = resolve(lay.spec.constraints, lay.names)
    if not resolved.fixed and not resolved.groups:
        return None
    p = lay.n_params
    A, b = np.diag(st.A), st.b
    logs, roots = _log_rows(st), _root_rows(st)
    offset = np.zeros(p)
    fixed = np.zeros(p, dtype=bool)
    for k, value in resolved.fixed.items():
        if k in logs:
            offset[k] = math.log(value / A[k])
        elif k in roots:
            offset[k] = math.sqrt(value / A[k])
        else:
            offset[k] = (value - b[k]) / A[k]
        fixed[k] = True
    follows: dict[int, tuple[int, float, float]] = {}
    for group in resolved.groups:
        r = group[0]
        for k in group[1:]:
            if k in logs:
                follows[k] = (r, 1.0, math.log(A[r] / A[k]))
            elif k in roots:
                follows[k] = (r, math.sqrt(A[r] / A[k]), 0.0)
            else:
                follows[k] = (r, A[r] / A[k], (b[r] - b[k]) / A[k])
    free = [k for k in range(p) if not fixed[k] and k not in follows]
    column = {k: j for j, k in enumerate(free)}
    matrix = np.zeros((p, len(free)))
    for k in free:
        matrix[k, column[k]] = 1.0
    for k, (r, slope, shift) in follows.items():
        matrix[k, column[r]] = slope
        offset[k] = shift
    return Tie(matrix=matrix, offset=offset, fixed=fixed)


class TiedQuadrature:
    """An :class:`~bayesmix.density.quadrature.AdaptiveQuadrature` whose methods take the
    free vector of a :class:`Tie` in place of theta; the rest is the quadrature's own."""

    def __init__(self, quad: AdaptiveQuadrature, tie: Tie) -> None:
        self.quad = quad
        self.tie = tie

    def __getattr__(self, name: str) -> Any:
        return getattr(self.quad, name)

    def with_points(self, points: int) -> TiedQuadrature:
        """The same tied objective with another rule."""
        return TiedQuadrature(self.quad.with_points(points), self.tie)

    def value_and_grad(self, psi: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-likelihood and its gradient in the free vector, the nodes held fixed."""
        value, grad = self.quad.value_and_grad(self.tie.expand(psi))
        return value, self.tie.matrix.T @ grad

    def fun(self, psi: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative mean log-likelihood and its gradient in the free vector."""
        return self.tie.objective(self.quad.fun)(psi)

    def fun_following(self, psi: np.ndarray) -> tuple[float, np.ndarray]:
        """:meth:`fun` with the nodes following the parameters."""
        return self.tie.objective(self.quad.fun_following)(psi)

    def evaluate(self, psi: np.ndarray) -> list[np.ndarray]:
        """The quadrature's posterior quantities at the free vector."""
        return self.quad.evaluate(self.tie.expand(psi))

    def adapt(self, psi: np.ndarray, iterations: int = 2, settle: bool = False) -> float:
        """Move the nodes to the posterior at the free vector."""
        return self.quad.adapt(self.tie.expand(psi), iterations=iterations, settle=settle)
