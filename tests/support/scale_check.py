"""What an ML fit to rescaled or shifted covariates must equal, computed independently.

Used by tests/data/test_standardise.py and benchmarks/bench_scale_hsb_A.py. The
expected estimates of a fit to transformed data are the base fit's, carried
through the linear relation between the two designs' matrices, found by least
squares (``M_base = M_new S``) rather than by bayesmix's own map; their
covariance follows the same map, differentiated numerically.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

import bayesmix as bm
from bayesmix.data.design import Design, build_design
from bayesmix.model.params import Layout, Params, relabel

TRANSFORMS = {
    "x1e-6": (1e-6, 0.0),
    "x1e-3": (1e-3, 0.0),
    "x1e3": (1e3, 0.0),
    "x1e6": (1e6, 0.0),
    "+5e4": (1.0, 5e4),
}
"""Each transform of one covariate: multiply, then add."""


def transformed(data: pd.DataFrame, column: str, transform: str) -> pd.DataFrame:
    """``data`` with one column multiplied and shifted."""
    factor, shift = TRANSFORMS[transform]
    return data.assign(**{column: data[column] * factor + shift})


def _solve(new: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``S`` with ``base = new S`` exactly (checked)."""
    S = np.linalg.lstsq(new, base, rcond=None)[0]
    scale = np.abs(base).max() + 1.0
    assert np.abs(new @ S - base).max() <= 1e-6 * scale, "the designs are not linearly related"
    return S


@dataclass(frozen=True)
class _Map:
    base: Design
    new: Design

    def __post_init__(self) -> None:
        b, n = self.base, self.new
        object.__setattr__(self, "SF", _solve(n.F, b.F))
        object.__setattr__(self, "SZ", _solve(n.Z, b.Z))
        object.__setattr__(self, "SW", _solve(n.W, b.W))
        r = b.R.shape[1]
        object.__setattr__(self, "SR", _solve(n.R, b.R) if r else np.zeros((0, 0)))
        v = b.spec.residual_covariates
        object.__setattr__(self, "SV", _solve(n.V, b.V) if v else np.eye(b.V.shape[1]))

    def params(self, p: Params) -> Params:
        """The base design's parameters expressed for the new design."""
        beta = np.asarray(p.beta) @ self.SF.T
        gamma = np.asarray(p.gamma) @ self.SZ.T
        delta = np.asarray(p.delta) @ self.SW.T
        lsig = np.asarray(p.lsig)
        if self.base.spec.residual_covariates:
            lsig = lsig @ self.SV.T
        chol = np.asarray(p.chol)
        if chol.size:
            B = np.eye(chol.shape[0])
            r = self.SR.shape[0]
            B[:r, :r] = self.SR
            chol = B @ chol
        return Params(beta=beta, lsig=lsig, gamma=gamma, chol=chol, load=p.load, delta=delta)

    def natural(self, lay: Layout, values: np.ndarray) -> np.ndarray:
        return lay.pack(self.params(lay.unpack(values, natural=True)), natural=True)


def expected(base: bm.MLResult, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, Design]:
    """Expected estimates and standard errors of a fit of ``base.spec`` to ``data``."""
    new = build_design(base.spec, data)
    mapping = _Map(base.design, new)
    lay = base.design.layout
    est = mapping.natural(lay, base.estimates)
    jac = np.empty((len(est), len(est)))
    for k in range(len(est)):
        h = 1e-6 * max(1.0, abs(base.estimates[k]))
        up, down = base.estimates.copy(), base.estimates.copy()
        up[k] += h
        down[k] -= h
        jac[:, k] = (mapping.natural(lay, up) - mapping.natural(lay, down)) / (2 * h)
    se = np.sqrt(np.clip(np.diag(jac @ base.cov @ jac.T), 0.0, None))
    return est, se, new


def mismatch(fit: bm.MLResult, est: np.ndarray, se: np.ndarray) -> float:
    """Largest |difference| / max(|estimate|, SE) over estimates and SEs, best class order.

    Class orders are tried for up to two classes, where relabelling moves
    standard errors between names without changing them.
    """
    lay = fit.design.layout
    K = fit.spec.classes
    assert K <= 2, "standard errors of relabelled membership logits are compared for K <= 2"
    best = np.inf
    for perm in itertools.permutations(range(K)):
        params = relabel(lay.unpack(fit.estimates, natural=True), np.array(perm))
        values = lay.pack(params, natural=True)
        order = np.array([lay.names.index(n) for n in _permuted_names(lay, perm)])
        scale = np.maximum(np.abs(est), se)
        worst = max(
            np.max(np.abs(values - est) / scale),
            np.max(np.abs(fit.se[order] - se) / scale),
        )
        best = min(best, worst)
    return float(best)


def _permuted_names(lay: Layout, perm: tuple[int, ...]) -> list[str]:
    """For each name after relabelling by ``perm``, the name it had before."""
    out = []
    for name in lay.names:
        for c_new, c_old in enumerate(perm):
            name_c = f"[c{c_new + 1}"
            if name_c in name:
                name = name.replace(name_c, f"[c{c_old + 1}")
                break
        out.append(name)
    return out
