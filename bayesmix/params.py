"""Parameter layout: names, counts, packing and class relabelling.

Structured (natural-scale) parameters of a single-level regression mixture:

* ``beta``, shape (K, p): outcome coefficients per class (eq 1); columns of
  class-invariant terms are equal across rows.
* ``sigma2``, shape (K,): residual variance per class (equal entries when
  the variance is class-invariant).
* ``gamma``, shape (K-1, q): membership logit coefficients (eq 2); the last
  class is the reference with coefficients 0.

The free parameters are listed in a fixed order (:func:`param_names`). The
optimiser works on an unconstrained vector ``theta`` in the same order with
variances on the log scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesmix.spec import Spec


def class_label(c: int) -> str:
    """Label of class index ``c`` (0-based) as used in parameter names."""
    return f"c{c + 1}"


def param_names(spec: Spec) -> list[str]:
    """Names of the free parameters, in layout order.

    Class-specific outcome terms end in ``[c1]``, ``[c2]``...; the residual
    variance is ``sigma2`` (``sigma2[c1]``... when class-specific); membership
    coefficients read ``C#1 ~ x``.
    """
    K = spec.classes
    names: list[str] = []
    for term in spec.terms:
        if term in spec.class_varying:
            names.extend(f"{term}[{class_label(c)}]" for c in range(K))
        else:
            names.append(term)
    if spec.residual_variance == "class":
        names.extend(f"sigma2[{class_label(c)}]" for c in range(K))
    else:
        names.append("sigma2")
    for c in range(K - 1):
        names.extend(f"C#{c + 1} ~ {term}" for term in spec.membership)
    return names


def count_params(spec: Spec) -> int:
    """Number of free parameters of the model."""
    return len(param_names(spec))


def variance_mask(spec: Spec) -> np.ndarray:
    """Boolean mask of the layout entries that are variances (log scale in theta)."""
    return np.array([n.startswith("sigma2") for n in param_names(spec)])


@dataclass(frozen=True, eq=False)
class Params:
    """Natural-scale parameters of a regression mixture.

    Attributes
    ----------
    beta : ndarray, shape (K, p)
    sigma2 : ndarray, shape (K,)
    gamma : ndarray, shape (K-1, q)
    """

    beta: np.ndarray
    sigma2: np.ndarray
    gamma: np.ndarray


def unpack(theta: Any, spec: Spec, xp: Any = np, *, log_variances: bool = True) -> Params:
    """Split a flat parameter vector into structured parameters.

    Parameters
    ----------
    theta : array-like
        Flat vector in :func:`param_names` order (numpy array or pytensor
        tensor).
    spec : Spec
    xp : module
        ``numpy`` or ``pytensor.tensor``; supplies ``stack``, ``exp`` and
        ``zeros``.
    log_variances : bool
        Whether the variance entries of ``theta`` are on the log scale.

    Returns
    -------
    Params
    """
    K, p, q = spec.classes, len(spec.terms), len(spec.membership)
    pos = 0
    columns = []
    for term in spec.terms:
        if term in spec.class_varying:
            columns.append(xp.stack([theta[pos + c] for c in range(K)]))
            pos += K
        else:
            columns.append(xp.stack([theta[pos]] * K))
            pos += 1
    beta = xp.stack(columns, axis=1) if p else xp.zeros((K, 0))
    n_var = K if spec.residual_variance == "class" else 1
    var = theta[pos : pos + n_var]
    pos += n_var
    if log_variances:
        var = xp.exp(var)
    sigma2 = var if n_var == K else xp.stack([var[0]] * K)
    if K > 1:
        gamma = xp.stack(
            [xp.stack([theta[pos + c * q + j] for j in range(q)]) for c in range(K - 1)]
        )
    else:
        gamma = xp.zeros((0, q))
    return Params(beta=beta, sigma2=sigma2, gamma=gamma)


def pack(params: Params, spec: Spec, *, log_variances: bool = False) -> np.ndarray:
    """Inverse of :func:`unpack` for numpy values.

    Class-invariant terms take the value of class 1.
    """
    out: list[float] = []
    K = spec.classes
    for j, term in enumerate(spec.terms):
        if term in spec.class_varying:
            out.extend(float(params.beta[c, j]) for c in range(K))
        else:
            out.append(float(params.beta[0, j]))
    var = params.sigma2 if spec.residual_variance == "class" else params.sigma2[:1]
    var = np.log(var) if log_variances else var
    out.extend(float(v) for v in var)
    out.extend(float(g) for g in np.asarray(params.gamma).ravel())
    return np.asarray(out, dtype=float)


def from_named(values: dict[str, float], spec: Spec) -> Params:
    """Build :class:`Params` from a mapping of parameter names to values.

    Raises
    ------
    KeyError
        Listing every missing or unknown name.
    """
    names = param_names(spec)
    missing = [n for n in names if n not in values]
    if missing:
        raise KeyError(f"missing parameter value(s) {missing}; the model has {names}.")
    unknown = [n for n in values if n not in names]
    if unknown:
        raise KeyError(f"unknown parameter name(s) {unknown}; the model has {names}.")
    vec = np.array([float(values[n]) for n in names])
    return unpack(vec, spec, log_variances=False)


def order_permutation(params: Params, spec: Spec) -> np.ndarray:
    """Class order that labels classes by decreasing ``spec.order_classes_by``."""
    if spec.classes == 1 or spec.order_classes_by is None:
        return np.arange(spec.classes)
    j = spec.terms.index(spec.order_classes_by)
    return np.argsort(-np.asarray(params.beta)[:, j], kind="stable")


def relabel(params: Params, perm: np.ndarray) -> Params:
    """Reorder classes so that new class ``c`` is old class ``perm[c]``.

    Membership logits are re-expressed against the new last class, so that
    the implied class probabilities are unchanged.
    """
    perm = np.asarray(perm)
    beta = np.asarray(params.beta)[perm]
    sigma2 = np.asarray(params.sigma2)[perm]
    gamma = np.asarray(params.gamma)
    full = np.vstack([gamma, np.zeros((1, gamma.shape[1]))])
    reordered = full[perm]
    new_gamma = reordered[:-1] - reordered[-1]
    return Params(beta=beta, sigma2=sigma2, gamma=new_gamma)
