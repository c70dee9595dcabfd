"""Internal standardisation: both estimators work on centred and scaled data.

A covariate in dollars, in millionths or offset by 50 000 makes the
parameters of different orders of magnitude and strongly correlated, which
stalls an optimiser, spoils finite-difference information matrices and
slows NUTS. Both estimators therefore fit the model to standardised
columns, ``v' = (v - c_v) / s_v`` with ``s_v`` the column's standard
deviation and ``c_v`` its mean, and the outcome ``y' = (y - c_y) / s_y``,
and map the estimates, their covariance and the posterior draws back to the
user's units.

The map is exact: every design matrix ``M`` of the model (fixed effects,
random effects, membership, log-linear residual variance, level-2 class
regression) satisfies ``M' = M T`` for a matrix ``T`` found by expanding
each column, a product of variables, in the centred and scaled variables.
So the standardised model is the same model, and its natural parameters
(coefficients, variances and covariances) are an affine function of the
user's: ``natural = A natural' + b`` (:attr:`Standardisation.A`).

A variable is centred only where that keeps the model the same: each
matrix that uses it has an intercept and holds every lower-order product a
centred interaction expands into, a class-varying coefficient never feeds a
shared one (centring ``x`` moves ``c_x beta_x`` into the intercept, so the
intercept must vary over the classes wherever ``beta_x`` does), and a
diagonal random-effect covariance stays diagonal. Other variables are only
scaled, which is always exact. The grouping column of ``residual_groups``
keeps its values, which name its variances.

Consequences a user sees:

* classes are labelled by ``order_classes_by`` at the means of the centred
  covariates (for the intercept: the class means of the outcome at the
  covariates' means), not at covariate values of 0;
* the default priors of NUTS (:mod:`bayesmix.model.priors`) are set on the
  standardised scale, so multiplying a covariate leaves the posterior as it
  is; the prior of an intercept (outcome, membership logit, level-2 class
  logit, log residual variance) is the prior of the intercept at the
  centred covariates' means, as brms does, and the LKJ prior on the
  correlations of the school residuals concerns the residuals of those
  centred coefficients;
* convergence criteria and variance bounds are judged on the standardised
  scale, the same for every choice of units;
* a variable is not centred where that would make a constrained parameter
  (:mod:`bayesmix.model.constraints`) depend on other standardised parameters:
  each fixed value or equality in the user's units then stays one in the
  standardised model.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bayesmix.data.design import Design, design_matrices
from bayesmix.model.constraints import resolve
from bayesmix.model.formula import INTERCEPT, term_parts
from bayesmix.model.params import Layout, Params
from bayesmix.model.priors import Prior

Columns = tuple[tuple[str, ...], ...]
"""Each column of a design matrix as the sorted variables whose product it is."""


def _variables(term: str | None) -> tuple[str, ...]:
    if term is None or term == INTERCEPT:
        return ()
    return term_parts(term)


def _columns(design: Design) -> dict[str, Columns]:
    """The variables behind every column of the model's design matrices."""
    spec = design.spec
    out = {
        "F": tuple(
            tuple(sorted(_variables(term) + _variables(w))) for _, term, w in spec.fixed_effects
        ),
        "R": tuple(tuple(sorted(_variables(t))) for t in spec.random),
        "Z": tuple(tuple(sorted(_variables(t))) for t in spec.membership),
        "W": tuple(tuple(sorted(_variables(t))) for t in spec.between_membership),
    }
    if spec.residual_covariates:
        out["V"] = tuple(tuple(sorted(_variables(t))) for t in ("1", *spec.residual_covariates))
    return out


def expansion(
    columns: Columns, centre: dict[str, float], scale: dict[str, float]
) -> np.ndarray | None:
    """``T`` with ``M' = M T`` for standardised variables, or None when ``M`` is not closed.

    Column k is the product of its variables ``v``; with each replaced by
    ``(v - c_v) / s_v`` it expands into products of subsets of those
    variables, each of which must be a column of the matrix.
    """
    index = {cols: j for j, cols in enumerate(columns)}
    T = np.zeros((len(columns), len(columns)))
    for k, cols in enumerate(columns):
        denominator = math.prod(scale[v] for v in cols)
        for keep in itertools.product((True, False), repeat=len(cols)):
            kept = tuple(v for v, k_ in zip(cols, keep, strict=True) if k_)
            coef = math.prod(-centre[v] for v, k_ in zip(cols, keep, strict=True) if not k_)
            if coef == 0.0:
                continue
            j = index.get(tuple(sorted(kept)))
            if j is None:
                return None
            T[j, k] += coef / denominator
    return T


def _fixed_positions(lay: Layout) -> list[np.ndarray]:
    """For each fixed effect, the natural-vector position of its value in each of the L K rows."""
    spec = lay.spec
    K, L = spec.classes, spec.between_classes
    out, pos = [], lay._slices()["fixed"].start
    for name in spec.fixed_names:
        cv, bv = lay._varies(name)
        if cv and bv:
            index = [pos + d * K + c for d in range(L) for c in range(K)]
        elif cv:
            index = [pos + c for _ in range(L) for c in range(K)]
        elif bv:
            index = [pos + d for d in range(L) for _ in range(K)]
        else:
            index = [pos] * (L * K)
        out.append(np.asarray(index))
        pos = max(index) + 1
    return out


def _fixed_valid(T: np.ndarray, lay: Layout) -> bool:
    """Whether ``beta = T beta'`` keeps which effects vary over which classes."""
    names = lay.spec.fixed_names
    for j, k in zip(*np.nonzero(T), strict=True):
        if j == k:
            continue
        vary_j, vary_k = lay._varies(names[j]), lay._varies(names[k])
        if (vary_k[0] and not vary_j[0]) or (vary_k[1] and not vary_j[1]):
            return False
    return True


@dataclass(frozen=True, eq=False)
class Standardisation:
    """How a design was standardised, and the map of its parameters back.

    Attributes
    ----------
    centre, scale : dict of str to float
        ``c_v`` (0 where a variable is only scaled) and ``s_v`` of each covariate.
    y_centre, y_scale : float
        ``c_y`` and ``s_y`` of the outcome.
    T : dict of str to ndarray
        ``M' = M T`` for the matrices ``"F"``, ``"R"``, ``"Z"``, ``"W"`` and
        (model 1b) ``"V"``.
    A, b : ndarray
        ``natural = A natural' + b`` for the natural parameter vectors of the
        layout (user's units) and of the standardised model.
    """

    layout: Layout
    centre: dict[str, float]
    scale: dict[str, float]
    y_centre: float
    y_scale: float
    T: dict[str, np.ndarray]
    A: np.ndarray
    b: np.ndarray

    @property
    def centred(self) -> tuple[str, ...]:
        """Covariates that are centred (the others are only scaled)."""
        return tuple(v for v, c in self.centre.items() if c != 0.0)

    def to_user(self, natural: np.ndarray) -> np.ndarray:
        """Natural parameters in the user's units from standardised ones (last axis)."""
        return np.asarray(natural) @ self.A.T + self.b

    def to_internal(self, natural: np.ndarray) -> np.ndarray:
        """Standardised natural parameters from the user's (a vector)."""
        return np.linalg.solve(self.A, np.asarray(natural, dtype=float) - self.b)

    def cov_to_user(self, cov: np.ndarray) -> np.ndarray:
        """Covariance of the estimates in the user's units."""
        return self.A @ cov @ self.A.T

    def outcome_block(self) -> np.ndarray:
        """``B`` with ``u = B u'`` for all school residuals (outcome terms, then membership)."""
        lay = self.layout
        B = np.eye(lay.n_random)
        r = lay.n_outcome_random
        B[:r, :r] = self.y_scale * self.T["R"]
        return B

    def _lsig(self, lsig: np.ndarray) -> np.ndarray:
        """Log residual variance coefficients (..., K, v) in the user's units."""
        lay = self.layout
        shift = np.zeros(lay.residual_width)
        if lay.spec.residual_covariates:
            out = lsig @ self.T["V"].T
            shift[0] = 2.0 * math.log(self.y_scale)
        else:
            out = np.array(lsig, dtype=float)
            shift[:] = 2.0 * math.log(self.y_scale)
        return out + shift

    def params_to_user(self, params: Params) -> Params:
        """Structured parameters (numpy, any leading dimensions) in the user's units."""
        beta = self.y_scale * np.asarray(params.beta) @ self.T["F"].T
        if INTERCEPT in self.layout.spec.fixed_names:
            j = self.layout.spec.fixed_names.index(INTERCEPT)
            beta[..., j] += self.y_centre
        chol = np.asarray(params.chol)
        if chol.shape[-1]:
            chol = _lower_factor(self.outcome_block() @ chol)
        gamma = np.asarray(params.gamma) @ self.T["Z"].T
        delta = np.asarray(params.delta) @ self.T["W"].T
        return Params(
            beta=beta,
            lsig=self._lsig(np.asarray(params.lsig)),
            gamma=gamma,
            chol=chol,
            load=params.load,
            delta=delta,
        )

    def residuals_to_user(self, u: np.ndarray) -> np.ndarray:
        """School residuals (..., r_all) in the user's units."""
        return np.asarray(u) @ self.outcome_block().T

    # -- priors ---------------------------------------------------------------------------------

    def _prior_factor(self, name: str) -> tuple[float, float]:
        """``(a, b)`` with ``user = a internal + b`` for the quantity a prior key names."""
        lay = self.layout
        names = lay.names
        if name in names:
            k = names.index(name)
            return float(self.A[k, k]), float(self.b[k])
        if name == "sigma":
            return self.y_scale, 0.0
        if name.startswith("sd(u_"):
            k = names.index(f"var({name[3:-1]})")
            return math.sqrt(self.A[k, k]), 0.0
        raise KeyError(name)

    def prior_to_internal(self, name: str, prior: Prior) -> Prior:
        """A prior on the user's scale as the prior of the standardised quantity."""
        a, b = self._prior_factor(name)
        return replace(prior, mu=(prior.mu - b) / a, sigma=prior.sigma / abs(a))

    def prior_to_user(self, name: str, prior: Prior) -> Prior:
        """A prior of the standardised quantity on the user's scale."""
        a, b = self._prior_factor(name)
        return replace(prior, mu=a * prior.mu + b, sigma=prior.sigma * abs(a))


def _lower_factor(factor: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of ``factor factor'`` (any leading dims), exact when singular."""
    _, upper = np.linalg.qr(np.swapaxes(factor, -1, -2))
    signs = np.where(np.diagonal(upper, axis1=-2, axis2=-1) < 0, -1.0, 1.0)
    return np.swapaxes(upper * signs[..., :, None], -1, -2)


def _natural_map(
    lay: Layout, T: dict[str, np.ndarray], y_centre: float, y_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """``A`` and ``b`` of ``natural = A natural' + b``, block by block."""
    spec = lay.spec
    p = lay.n_params
    A, b = np.zeros((p, p)), np.zeros(p)
    sl = lay._slices()
    positions = _fixed_positions(lay)
    TF = T["F"]
    for j, rows_j in enumerate(positions):
        for k in np.flatnonzero(TF[j]):
            A[rows_j, positions[k]] = y_scale * TF[j, k]
        if spec.fixed_names[j] == INTERCEPT:
            b[rows_j] = y_centre
    # variances and covariances: Sigma = B Sigma' B'
    r_all = lay.n_random
    if r_all:
        B = np.eye(r_all)
        r = lay.n_outcome_random
        B[:r, :r] = y_scale * T["R"]
        pairs = [(i, i) for i in range(r_all)]
        if spec.covariance == "unstructured":
            pairs += [(i, j) for i in range(r_all) for j in range(i + 1, r_all)]
        start = sl["cov"].start
        for out, (a1, a2) in enumerate(pairs):
            for inp, (c1, c2) in enumerate(pairs):
                value = B[a1, c1] * B[a2, c2]
                if c1 != c2:
                    value += B[a1, c2] * B[a2, c1]
                A[start + out, start + inp] = value
    for k in range(sl["load"].start, sl["load"].stop):
        A[k, k] = 1.0
    v = lay.residual_width
    start = sl["resid"].start
    n_resid = sl["resid"].stop - start
    if spec.residual_covariates:
        TV = T["V"]
        for block in range(n_resid // v):
            rows = slice(start + block * v, start + (block + 1) * v)
            A[rows, rows] = TV
            b[start + block * v] = 2.0 * math.log(y_scale)
    else:
        for k in range(start, start + n_resid):
            A[k, k] = y_scale**2
    for kind, key, width in (
        ("member", "Z", len(spec.membership)),
        ("between", "W", len(spec.between_membership)),
    ):
        start, stop = sl[kind].start, sl[kind].stop
        for block in range((stop - start) // max(width, 1)):
            rows = slice(start + block * width, start + (block + 1) * width)
            A[rows, rows] = T[key]
    return A, b


def _numeric(design: Design, variables: list[str]) -> pd.DataFrame:
    """The used columns as floats, as :func:`~bayesmix.data.design.build_design` sees them."""
    spec = design.spec
    numeric = design.frame[[spec.outcome, *variables]].astype(float)
    for col in spec.centre:
        if col in numeric.columns:
            numeric[col] = numeric[col] - numeric[col].mean()
    return numeric


def _transforms(
    columns: dict[str, Columns], design: Design, centre: dict[str, float], scale: dict[str, float]
) -> dict[str, np.ndarray] | None:
    """Every matrix's ``T``, or None when centring ``centre`` changes the model."""
    spec, lay = design.spec, design.layout
    out: dict[str, np.ndarray] = {}
    for key, cols in columns.items():
        T = expansion(cols, centre, scale)
        if T is None:
            return None
        out[key] = T
    if not _fixed_valid(out["F"], lay):
        return None
    TR = out["R"]
    if spec.covariance == "diagonal" and np.count_nonzero(TR - np.diag(np.diag(TR))):
        return None
    if "V" not in out:
        out["V"] = np.eye(lay.residual_width)
    return out


def _keeps_constraints(lay: Layout, T: dict[str, np.ndarray], constrained: list[int]) -> bool:
    """Whether each constrained parameter stays a function of its own standardised
    counterpart alone, so that a fixed value or an equality in the user's units is one
    in the standardised model (centring a variable mixes it into the intercepts)."""
    if not constrained:
        return True
    A = _natural_map(lay, T, 0.0, 1.0)[0][constrained]
    A[np.arange(len(constrained)), constrained] = 0.0
    return not np.any(A)


def standardise(design: Design) -> tuple[Design, Standardisation]:
    """The design on standardised columns, and the map of its parameters to the user's units.

    Parameters
    ----------
    design : Design
        A validated design (see :func:`bayesmix.data.design.build_design`).

    Returns
    -------
    Design
        The same rows with standardised outcome and covariates (the cluster
        and ``residual_groups`` columns unchanged); its layout is the
        original's.
    Standardisation
    """
    spec = design.spec
    columns = _columns(design)
    used = sorted({v for cols in columns.values() for col in cols for v in col})
    variables = [c for c in spec.columns if c in used and c != spec.residual_groups]
    numeric = _numeric(design, variables)
    scale: dict[str, float] = {}
    for v in used:
        sd = float(numeric[v].std(ddof=0)) if v in variables else 0.0
        scale[v] = sd if sd > 0 and math.isfinite(sd) else 1.0
    centre = dict.fromkeys(used, 0.0)
    transforms = _transforms(columns, design, centre, scale)
    assert transforms is not None  # scaling alone always keeps the model
    constrained = sorted(resolve(spec.constraints, design.layout.names).constrained)
    for v in variables:
        mean = float(numeric[v].mean())
        if mean == 0.0 or np.ptp(numeric[v].to_numpy()) == 0:
            continue
        trial = _transforms(columns, design, {**centre, v: mean}, scale)
        if trial is not None and _keeps_constraints(design.layout, trial, constrained):
            centre[v], transforms = mean, trial
    y = design.y
    y_scale = float(y.std())
    y_centre = float(y.mean()) if INTERCEPT in spec.fixed_names else 0.0
    A, b = _natural_map(design.layout, transforms, y_centre, y_scale)
    st = Standardisation(
        layout=design.layout,
        centre=centre,
        scale=scale,
        y_centre=y_centre,
        y_scale=y_scale,
        T=transforms,
        A=A,
        b=b,
    )
    scaled = numeric.copy()
    for v in variables:
        scaled[v] = (numeric[v] - centre[v]) / scale[v]
    scaled[spec.outcome] = (numeric[spec.outcome] - y_centre) / y_scale
    if spec.residual_groups:
        scaled[spec.residual_groups] = design.frame[spec.residual_groups].astype(float)
    first = design.bounds[:-1] if spec.cluster is not None else None
    m = design_matrices(spec, scaled, design.layout.group_levels, first, design.cluster_ids)
    frame = design.frame.copy()
    for col in [*variables, spec.outcome]:
        frame[col] = scaled[col].to_numpy()
    internal = replace(
        design,
        y=m.y,
        X=m.X,
        F=m.F,
        R=m.R,
        Z=m.Z,
        V=m.V,
        W=m.W,
        frame=frame,
        schools=m.schools,
    )
    return internal, st
