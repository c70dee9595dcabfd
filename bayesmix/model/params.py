"""Parameter layout: names, counts, transforms and class relabelling.

Structured parameters (:class:`Params`) of a model:

* ``beta``, shape (L K, P): fixed effects per class (outcome terms and their
  level-2 regressions, :attr:`Spec.fixed_names`); row ``d K + c`` belongs to
  level-1 class c in level-2 class d (L = 1 without level-2 classes);
  columns of invariant effects are equal across rows.
* ``lsig``, shape (K, v): coefficients of the log residual variance on the
  residual design V (a column of ones; plus level-1 covariates for model 1b;
  or one indicator per group for model 1c), so that
  ``log sigma2[i, c] = V[i] @ lsig[c]``.
* ``gamma``, shape (K-1, m): membership logit coefficients (eq 2); the last
  class is the reference with coefficients 0.
* ``chol``, shape (d, d): lower Cholesky factor of the covariance of all
  school residuals (``Spec.random_effects``: the r outcome terms, then the
  membership random intercepts; 0 x 0 without random effects).
* ``load``, shape (K-1, d - r): loadings of the membership logits on the
  membership random effects: the identity for independent random
  intercepts, ``(1, lambda_2, ..., lambda_{K-1})'`` for the factor model
  (eqs 24-25), empty without membership random effects.
* ``delta``, shape (L-1, m2): logit coefficients of the level-2 classes on
  school covariates (eq 32); the last level-2 class is the reference.

The free parameters have natural-scale names and values
(:meth:`Layout.names`); the optimiser works on an unconstrained-ish vector
``theta`` of the same length: log variances for residual variances and the
Cholesky entries (diagonal >= 0) for the random-effect covariance.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from bayesmix.model.constraints import labelling_term
from bayesmix.model.spec import Spec


def between_label(d: int) -> str:
    """Label of level-2 class index ``d`` (0-based) as used in parameter names."""
    return f"d{d + 1}"


def class_label(c: int) -> str:
    """Label of class index ``c`` (0-based) as used in parameter names."""
    return f"c{c + 1}"


@dataclass(frozen=True, eq=False)
class Params:
    """Structured parameters (see the module docstring for shapes)."""

    beta: Any
    lsig: Any
    gamma: Any
    chol: Any
    load: Any = None
    delta: Any = None

    @property
    def sigma2(self) -> np.ndarray:
        """Residual variance per class when it has no covariates (numpy only)."""
        return np.exp(np.asarray(self.lsig)[:, 0])


@dataclass(frozen=True)
class Layout:
    """Parameter layout of a spec (and the levels of its residual groups).

    Parameters
    ----------
    spec : Spec
    group_levels : tuple
        Levels of ``spec.residual_groups`` in the data (model 1c).
    """

    spec: Spec
    group_levels: tuple[Any, ...] = ()

    @cached_property
    def _blocks(self) -> list[tuple[str, list[str]]]:
        spec, K, L = self.spec, self.spec.classes, self.spec.between_classes
        blocks: list[tuple[str, list[str]]] = []
        fixed = [entry for name in spec.fixed_names for entry in self.fixed_entries(name)]
        blocks.append(("fixed", fixed))
        r = spec.random_effects
        cov = [f"var(u_{t})" for t in r]
        if spec.covariance == "unstructured":
            cov += [f"cov(u_{r[i]},u_{r[j]})" for i in range(len(r)) for j in range(i + 1, len(r))]
        blocks.append(("cov", cov))
        load = []
        if spec.membership_random == "factor":
            load = [f"lambda(C#{c + 1})" for c in range(1, K - 1)]
        blocks.append(("load", load))
        blocks.append(("resid", self._residual_names()))
        member = [f"C#{c + 1} ~ {t}" for c in range(K - 1) for t in spec.membership]
        blocks.append(("member", member))
        between = [f"D#{d + 1} ~ {t}" for d in range(L - 1) for t in spec.between_membership]
        blocks.append(("between", between))
        return blocks

    def fixed_entries(self, name: str) -> list[str]:
        """Parameter names of fixed effect ``name``: one per class it varies over.

        ``x[c1,d2]`` varies over level-1 and level-2 classes (level-2 class
        major), ``x[c1]`` over level-1 classes, ``x[d2]`` over level-2
        classes, plain ``x`` over neither.
        """
        K, L = self.spec.classes, self.spec.between_classes
        cv, bv = self._varies(name)
        if cv and bv:
            return [
                f"{name}[{class_label(c)},{between_label(d)}]" for d in range(L) for c in range(K)
            ]
        if cv:
            return [f"{name}[{class_label(c)}]" for c in range(K)]
        if bv:
            return [f"{name}[{between_label(d)}]" for d in range(L)]
        return [name]

    @property
    def residual_by_class(self) -> bool:
        """Whether each level-1 class has its own residual variance parameters."""
        return self.spec.residual_variance == "class" and self.spec.classes > 1

    def _residual_names(self) -> list[str]:
        """Residual variance parameters, class major when they are class-specific.

        Model 1b's log-linear coefficients are ``log(sigma2) ~ t`` (``... ~
        t[c1]`` per class), model 1c's group variances ``sigma2[g=level]``
        (``sigma2[g=level,c1]``), otherwise ``sigma2`` (``sigma2[c1]``).
        """
        spec, K = self.spec, self.spec.classes
        classes = [class_label(c) for c in range(K)] if self.residual_by_class else [None]
        out: list[str] = []
        for c in classes:
            if spec.residual_covariates:
                suffix = "" if c is None else f"[{c}]"
                out.extend(f"log(sigma2) ~ {t}{suffix}" for t in ("1", *spec.residual_covariates))
            elif spec.residual_groups:
                suffix = "" if c is None else f",{c}"
                out.extend(f"sigma2[{spec.residual_groups}={g}{suffix}]" for g in self.group_levels)
            else:
                out.append("sigma2" if c is None else f"sigma2[{c}]")
        return out

    def _varies(self, name: str) -> tuple[bool, bool]:
        """Whether fixed effect ``name`` varies over level-1 and over level-2 classes."""
        spec = self.spec
        return (
            name in spec.class_varying,
            spec.between_classes > 1 and name in spec.between_varying,
        )

    @cached_property
    def names(self) -> list[str]:
        """Names of the free parameters, in layout order."""
        return [n for _, names in self._blocks for n in names]

    @property
    def n_params(self) -> int:
        """Number of free parameters."""
        return len(self.names)

    def _slices(self) -> dict[str, slice]:
        out, pos = {}, 0
        for kind, names in self._blocks:
            out[kind] = slice(pos, pos + len(names))
            pos += len(names)
        return out

    @property
    def n_random(self) -> int:
        """Number of school random effects d (outcome and membership)."""
        return len(self.spec.random_effects)

    @property
    def n_outcome_random(self) -> int:
        """Number of outcome random effects r."""
        return len(self.spec.random)

    @property
    def residual_width(self) -> int:
        """Columns v of the residual design V."""
        spec = self.spec
        if spec.residual_covariates:
            return 1 + len(spec.residual_covariates)
        if spec.residual_groups:
            return len(self.group_levels)
        return 1

    @property
    def log_residual(self) -> bool:
        """Whether residual parameters are reported on the log scale (model 1b)."""
        return bool(self.spec.residual_covariates)

    def variance_names(self) -> list[str]:
        """Names of parameters that are variances (may sit on the boundary 0)."""
        return [n for n in self.names if n.startswith(("var(", "sigma2"))]

    # -- structured <-> flat ------------------------------------------------------------------

    def unpack(self, vec: Any, xp: Any = np, *, natural: bool = False) -> Params:
        """Split a flat vector (theta, or natural values) into :class:`Params`.

        Parameters
        ----------
        vec : array-like
            numpy array or pytensor vector in layout order.
        xp : module
            ``numpy`` or ``pytensor.tensor``.
        natural : bool
            Whether ``vec`` holds natural values (variances, covariances)
            rather than theta (log variances, Cholesky entries).
        """
        spec, K, L = self.spec, self.spec.classes, self.spec.between_classes
        sl = self._slices()
        pos = sl["fixed"].start
        columns = []
        for name in spec.fixed_names:
            cv, bv = self._varies(name)
            if cv and bv:
                index = [pos + d * K + c for d in range(L) for c in range(K)]
            elif cv:
                index = [pos + c for _ in range(L) for c in range(K)]
            elif bv:
                index = [pos + d for d in range(L) for _ in range(K)]
            else:
                index = [pos] * (L * K)
            columns.append(xp.stack([vec[i] for i in index]))
            pos = max(index) + 1
        beta = xp.stack(columns, axis=1)
        chol = self._chol(vec, sl["cov"].start, xp, natural)
        resid = [vec[i] for i in range(sl["resid"].start, sl["resid"].stop)]
        if natural and not self.log_residual:
            resid = [xp.log(v) for v in resid]
        if self.residual_by_class:
            v = self.residual_width
            lsig = xp.stack([xp.stack(resid[c * v : (c + 1) * v]) for c in range(K)])
        else:
            lsig = xp.stack([xp.stack(resid)] * K)
        m = len(spec.membership)
        start = sl["member"].start
        if K > 1:
            gamma = xp.stack(
                [xp.stack([vec[start + c * m + j] for j in range(m)]) for c in range(K - 1)]
            )
        else:
            gamma = xp.zeros((0, m))
        m2, start = len(spec.between_membership), sl["between"].start
        if L > 1:
            delta = xp.stack(
                [xp.stack([vec[start + d * m2 + j] for j in range(m2)]) for d in range(L - 1)]
            )
        else:
            delta = xp.zeros((0, m2))
        return Params(
            beta=beta,
            lsig=lsig,
            gamma=gamma,
            chol=chol,
            load=self._loadings(vec, sl["load"].start, xp),
            delta=delta,
        )

    def _loadings(self, vec: Any, start: int, xp: Any) -> Any:
        K, kind = self.spec.classes, self.spec.membership_random
        if kind == "independent":
            return xp.eye(K - 1)
        if kind == "factor":
            one = vec[0] * 0.0 + 1.0
            return xp.stack([xp.stack([one])] + [xp.stack([vec[start + c]]) for c in range(K - 2)])
        return xp.zeros((max(K - 1, 0), 0))

    def _chol(self, vec: Any, start: int, xp: Any, natural: bool) -> Any:
        r = self.n_random
        if r == 0:
            return xp.zeros((0, 0))
        if natural:
            # natural values are variances/covariances: a numpy-only path
            cov = self.covariance_matrix_from_natural(np.asarray(vec[start : start + self._n_cov]))
            return _psd_cholesky(cov)
        zero = vec[start] * 0.0
        rows = []
        if self.spec.covariance == "diagonal":
            for i in range(r):
                rows.append(xp.stack([vec[start + i] if j == i else zero for j in range(r)]))
            return xp.stack(rows)
        entries = iter(range(start, start + self._n_cov))
        lower = [[None] * r for _ in range(r)]
        for i in range(r):
            for j in range(i + 1):
                lower[i][j] = vec[next(entries)]
        for i in range(r):
            rows.append(xp.stack([lower[i][j] if j <= i else zero for j in range(r)]))
        return xp.stack(rows)

    @property
    def _n_cov(self) -> int:
        r = self.n_random
        return r if self.spec.covariance == "diagonal" else r * (r + 1) // 2

    def covariance_matrix_from_natural(self, values: np.ndarray) -> np.ndarray:
        """The r x r covariance of u from its natural parameters (var, then cov)."""
        r = self.n_random
        cov = np.diag(np.asarray(values[:r], dtype=float))
        if self.spec.covariance == "unstructured":
            k = r
            for i in range(r):
                for j in range(i + 1, r):
                    cov[i, j] = cov[j, i] = values[k]
                    k += 1
        return cov

    def effect_values(self, beta: np.ndarray, j: int) -> np.ndarray:
        """Fixed effect ``j``'s values in ``beta`` (its L K rows, row ``d K + c``) in the
        order of its entries (:meth:`fixed_entries`)."""
        K = self.spec.classes
        cv, bv = self._varies(self.spec.fixed_names[j])
        column = np.asarray(beta, dtype=float)[:, j]
        if cv and bv:
            return column
        if cv:
            return column[:K]
        return column[::K] if bv else column[:1]

    def pack(self, params: Params, *, natural: bool = True) -> np.ndarray:
        """Inverse of :meth:`unpack` for numpy values.

        Class-invariant effects take the value of class 1.
        """
        spec, L = self.spec, self.spec.between_classes
        beta = np.asarray(params.beta, dtype=float)
        out: list[float] = []
        for j in range(len(spec.fixed_names)):
            out.extend(float(v) for v in self.effect_values(beta, j))
        chol = np.asarray(params.chol, dtype=float)
        r = self.n_random
        if r:
            if natural:
                cov = chol @ chol.T
                out.extend(float(cov[i, i]) for i in range(r))
                if spec.covariance == "unstructured":
                    out.extend(float(cov[i, j]) for i in range(r) for j in range(i + 1, r))
            elif spec.covariance == "diagonal":
                out.extend(float(abs(chol[i, i])) for i in range(r))
            else:
                signs = np.where(np.diag(chol) < 0, -1.0, 1.0)
                fixed = chol * signs[None, :]
                out.extend(float(fixed[i, j]) for i in range(r) for j in range(i + 1))
        if spec.membership_random == "factor":
            out.extend(float(v) for v in np.asarray(params.load, dtype=float)[1:, 0])
        lsig = np.asarray(params.lsig, dtype=float)
        resid = lsig.ravel() if self.residual_by_class else lsig[0]
        if natural and not self.log_residual:
            resid = np.exp(resid)
        out.extend(float(v) for v in resid)
        out.extend(float(g) for g in np.asarray(params.gamma, dtype=float).ravel())
        if L > 1:
            out.extend(float(g) for g in np.asarray(params.delta, dtype=float).ravel())
        return np.asarray(out, dtype=float)

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        """Natural values (variances, covariances) from theta."""
        return self.pack(self.unpack(np.asarray(theta, dtype=float)), natural=True)

    def to_theta(self, natural: np.ndarray) -> np.ndarray:
        """Theta from natural values."""
        return self.pack(self.unpack(np.asarray(natural, dtype=float), natural=True), natural=False)

    def bounds(self, log_floor: float) -> list[tuple[float | None, float | None]]:
        """L-BFGS-B bounds on theta: Cholesky diagonals >= 0, log variances >= floor."""
        out: list[tuple[float | None, float | None]] = []
        sl = self._slices()
        r = self.n_random
        diag_pos = set()
        if self.spec.covariance == "diagonal":
            diag_pos = {sl["cov"].start + i for i in range(r)}
        else:
            k = sl["cov"].start
            for i in range(r):
                for j in range(i + 1):
                    if i == j:
                        diag_pos.add(k)
                    k += 1
        log_resid = not self.log_residual
        for i in range(self.n_params):
            if i in diag_pos:
                out.append((0.0, None))
            elif log_resid and sl["resid"].start <= i < sl["resid"].stop:
                out.append((log_floor, None))
            else:
                out.append((None, None))
        return out

    def from_named(self, values: dict[str, float]) -> Params:
        """:class:`Params` from a mapping of natural parameter names to values.

        Raises
        ------
        KeyError
            Listing every missing or unknown name.
        """
        names = self.names
        missing = [n for n in names if n not in values]
        if missing:
            raise KeyError(f"missing parameter value(s) {missing}; the model has {names}.")
        unknown = [n for n in values if n not in names]
        if unknown:
            raise KeyError(f"unknown parameter name(s) {unknown}; the model has {names}.")
        return self.unpack(np.array([float(values[n]) for n in names]), natural=True)


def _psd_cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive semi-definite matrix (zero rows where singular)."""
    r = cov.shape[0]
    chol = np.zeros((r, r))
    for i in range(r):
        for j in range(i + 1):
            s = cov[i, j] - chol[i, :j] @ chol[j, :j]
            if i == j:
                chol[i, i] = np.sqrt(max(s, 0.0))
            else:
                chol[i, j] = s / chol[j, j] if chol[j, j] > 0 else 0.0
    return chol


def layout(spec: Spec, group_levels: tuple[Any, ...] = ()) -> Layout:
    """The :class:`Layout` of a spec."""
    return Layout(spec, tuple(group_levels))


def param_names(spec: Spec, group_levels: tuple[Any, ...] = ()) -> list[str]:
    """Names of the free parameters, in layout order.

    Class-specific effects end in ``[c1]``, ``[c2]``...; cross-level
    effects read ``x:w``; random-effect variances and covariances
    ``var(u_x)``, ``cov(u_1,u_x)``; the residual variance is ``sigma2``
    (``sigma2[c1]`` when class-specific, ``sigma2[g=level]`` per group,
    ``log(sigma2) ~ v`` when log-linear); membership coefficients read
    ``C#1 ~ x``.
    """
    return layout(spec, group_levels).names


def count_params(spec: Spec, group_levels: tuple[Any, ...] = ()) -> int:
    """Number of free parameters of the model."""
    return len(param_names(spec, group_levels))


def from_named(values: dict[str, float], spec: Spec) -> Params:
    """:class:`Params` from named natural values (see :meth:`Layout.from_named`)."""
    return layout(spec).from_named(values)


def labelling(spec: Spec) -> tuple[str | None, str | None]:
    """The fixed effects that label the level-1 and the level-2 classes.

    ``spec.order_classes_by`` and ``spec.between_order_by``, unless the spec's
    constraints tie their class values or single out a class (see
    :mod:`bayesmix.model.constraints`); None where nothing relabels the classes.
    """
    lay = Layout(spec)
    K, L = spec.classes, spec.between_classes
    cons = spec.constraints
    by_class = [n for n in spec.fixed_names if lay._varies(n)[0]]
    by_between = [n for n in spec.fixed_names if lay._varies(n)[1]]
    level1 = None
    if K > 1:
        level1 = labelling_term(
            cons,
            spec.order_classes_by,
            by_class,
            {n: lay.fixed_entries(n)[:K] for n in by_class},
            [class_label(c) for c in range(K)],
            ("C#", "lambda("),
        )
    level2 = None
    if L > 1:
        level2 = labelling_term(
            cons,
            spec.between_order_by,
            by_between,
            {n: lay.fixed_entries(n)[:: K if lay._varies(n)[0] else 1] for n in by_between},
            [between_label(d) for d in range(L)],
            ("D#",),
        )
    return level1, level2


def order_permutation(params: Params, spec: Spec) -> np.ndarray:
    """Class order that labels classes by decreasing value of their labelling effect
    (:func:`labelling`); the identity where none labels them."""
    term = labelling(spec)[0]
    if spec.classes == 1 or term is None:
        return np.arange(spec.classes)
    j = spec.fixed_names.index(term)
    return np.argsort(-np.asarray(params.beta)[: spec.classes, j], kind="stable")


def between_order_permutation(params: Params, spec: Spec) -> np.ndarray:
    """Level-2 class order: decreasing value of their labelling effect (:func:`labelling`,
    ``spec.between_order_by`` by default) in level-1 class 1."""
    L, K = spec.between_classes, spec.classes
    term = labelling(spec)[1]
    if L == 1 or term is None:
        return np.arange(L)
    j = spec.fixed_names.index(term)
    return np.argsort(-np.asarray(params.beta)[::K, j], kind="stable")


def relabel_between(params: Params, perm: np.ndarray) -> Params:
    """Reorder level-2 classes so that new class ``d`` is old class ``perm[d]``."""
    perm = np.asarray(perm)
    beta = np.asarray(params.beta)
    L = len(perm)
    K = beta.shape[0] // L
    delta = np.asarray(params.delta)
    full = np.vstack([delta, np.zeros((1, delta.shape[1]))])[perm]
    return Params(
        beta=beta.reshape(L, K, -1)[perm].reshape(L * K, -1),
        lsig=params.lsig,
        gamma=params.gamma,
        chol=params.chol,
        load=params.load,
        delta=full[:-1] - full[-1],
    )


def relabel(params: Params, perm: np.ndarray) -> Params:
    """Reorder classes so that new class ``c`` is old class ``perm[c]``.

    Membership logits are re-expressed against the new last class, so that
    the implied class probabilities are unchanged.
    """
    perm = np.asarray(perm)
    gamma = np.asarray(params.gamma)
    full = np.vstack([gamma, np.zeros((1, gamma.shape[1]))])
    reordered = full[perm]
    chol, load = params.chol, params.load
    if load is not None and np.asarray(load).size:
        chol, load = _relabel_membership_random(np.asarray(chol), np.asarray(load), perm)
    beta = np.asarray(params.beta)
    K = len(perm)
    return Params(
        beta=beta.reshape(-1, K, beta.shape[1])[:, perm].reshape(beta.shape),
        lsig=np.asarray(params.lsig)[perm],
        gamma=reordered[:-1] - reordered[-1],
        chol=chol,
        load=load,
        delta=params.delta,
    )


def _relabel_membership_random(
    chol: np.ndarray, load: np.ndarray, perm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Re-express membership random effects after relabelling the classes.

    The logits' random parts ``load @ a`` become ``new @ a`` with ``new``
    measured against the new reference class. The random effects are
    rescaled to the canonical form (identity loadings for independent
    intercepts; loading 1 on C#1 for the factor) by ``a' = T a``, which
    transforms their covariance (and cross-covariances) by T.
    """
    full = np.vstack([load, np.zeros((1, load.shape[1]))])[perm]
    new = full[:-1] - full[-1]
    r_m = load.shape[1]
    T = new if r_m == new.shape[0] else new[:1]
    if abs(np.linalg.det(T)) < 1e-12:
        raise ValueError("relabelling leaves class 1 without a membership random effect.")
    d = chol.shape[0]
    A = np.eye(d)
    A[d - r_m :, d - r_m :] = T
    cov = A @ chol @ chol.T @ A.T
    return _psd_cholesky(cov), new @ np.linalg.inv(T)


def needs_quadrature(lay: Layout) -> bool:
    """Whether the model needs the quadrature objective.

    Two-level mixtures with random effects integrate them numerically;
    level-2 classes mix whole schools, which that objective handles (with a
    single node when there are no random effects).
    """
    return (lay.n_random > 0 and lay.spec.classes > 1) or lay.spec.between_classes > 1
