"""The DataTree of a NUTS fit: the paper's parameters in ``posterior``, the sampler's apart.

``posterior``
    One (chain, draw) variable per parameter, named exactly as the rows of
    ``BayesResult.table`` and ``summary()`` (``1[c1]``, ``x:w``,
    ``var(u_1)``, ``cov(u_1,u_x)``, ``sigma2``, ``C#1 ~ w``), in the user's
    units, so that ``az.summary(post.idata)`` and ArviZ's plots speak the
    paper; then, where the model has them:

    * ``u``: the school residuals, dims ``cluster`` x ``rterm`` (model C:
      ``between`` x ``cluster`` x ``rterm``, one residual vector per
      level-2 class), in the user's units;
    * ``class_share`` (dim ``class``, mixtures only): per draw, the mean
      over the students of their class probabilities given the data, the
      parameters and the school residuals of that draw. Its posterior mean
      is the class proportion that ``summary()`` prints (the mean of
      ``class_probabilities``); the per-student probabilities themselves
      are kept as posterior means on the result, not per draw;
    * ``between_share`` (dim ``between``, model C only): the same for the
      schools' level-2 classes.

``sample_space``
    The PyMC model's variables as NUTS sampled them, on the standardised
    scale of :mod:`bayesmix.data.standardise`: the free variables in the
    coordinates NUTS moves in (``b_whitened``, ``b_1_last``,
    ``b_1_log_gap``, ``b_x_centred``, ``b_school``, ``z_u``, ``z_member``,
    ``sd_u``, ``chol_corr_u``, ``sigma``, ``gamma``, ``lambda``, ``delta``...) and
    the model's deterministics (``b_<effect>``, ``chol_u``, ``u``...). For
    diagnosing the sampler (a funnel, a slow coordinate), not for reporting.

``log_likelihood``
    One array, so that ``az.loo(idata)`` and ``az.compare`` work with
    ArviZ's defaults: ``y`` per student (dim ``obs``), conditional on the
    school residuals; for models with level-2 classes (model C), whose
    students a school's class ties together, ``y_school`` per school (dim
    ``school``), D_j marginalised, conditional on the residuals. The school
    levels of the other models come as DataTrees of their own
    (:func:`bayesmix.analysis.loo.loo_data`).

``sample_stats`` and ``observed_data`` are as the sampler writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from bayesmix.model.params import between_label, class_label

if TYPE_CHECKING:
    from bayesmix.bayes.draws import Pointwise
    from bayesmix.model.spec import Spec

SAMPLE_SPACE = "sample_space"
"""The group of the sampler's own variables."""

RESIDUALS = "u"
CLASS_SHARE = "class_share"
BETWEEN_SHARE = "between_share"
STUDENT_LOGLIK = "y"
SCHOOL_LOGLIK = "y_school"


def paper_posterior(
    named: Mapping[str, np.ndarray],
    like: xr.Dataset,
    residuals: xr.DataArray | None,
    class_share: np.ndarray | None,
    between_share: np.ndarray | None,
) -> xr.Dataset:
    """The ``posterior`` group: named parameters, school residuals and class shares.

    Parameters
    ----------
    named : mapping of str to ndarray
        Draws (chain, draw) of each parameter, in the user's units, in the
        order of the result's table.
    like : xarray.Dataset
        The sampler's posterior, whose chain and draw coordinates and
        attributes are kept.
    residuals : xarray.DataArray, optional
        The school residuals in the user's units, with their dims.
    class_share, between_share : ndarray, optional
        Shares per draw (chain, draw, K) and (chain, draw, L); left out for
        one class, where the share is constantly 1 (an ESS of a constant is
        undefined, and ArviZ's LOO averages the ESS of every variable).
    """
    sample = {"chain": like["chain"].values, "draw": like["draw"].values}
    data: dict[str, Any] = {
        name: xr.DataArray(np.asarray(values), dims=("chain", "draw"), coords=sample)
        for name, values in named.items()
    }
    if residuals is not None:
        data[RESIDUALS] = residuals
    for name, share, dim, label in (
        (CLASS_SHARE, class_share, "class", class_label),
        (BETWEEN_SHARE, between_share, "between", between_label),
    ):
        if share is not None and share.shape[-1] > 1:
            labels = [label(k) for k in range(share.shape[-1])]
            data[name] = xr.DataArray(
                share, dims=("chain", "draw", dim), coords={**sample, dim: labels}
            )
    return xr.Dataset(data, attrs=dict(like.attrs))


def split_posterior(
    idata: xr.DataTree,
    named: Mapping[str, np.ndarray],
    u: np.ndarray | None,
    pointwise: Pointwise,
    spec: Spec,
) -> None:
    """Rearrange a sampled DataTree in place into the groups of this module.

    ``idata["posterior"]`` holds the sampler's variables on entry; they move
    to ``sample_space``, and ``posterior`` and ``log_likelihood`` are
    written from the named draws, the school residuals ``u`` in the user's
    units (shaped as the sampler's ``u``) and the pointwise pass.
    """
    raw = idata["posterior"].to_dataset()
    residuals = None if u is None else raw[RESIDUALS].copy(data=u)
    posterior = paper_posterior(
        named, raw, residuals, pointwise.class_share, pointwise.between_share
    )
    if spec.between_classes > 1:
        loglik = {SCHOOL_LOGLIK: (("chain", "draw", "school"), pointwise.loglik)}
    else:
        loglik = {STUDENT_LOGLIK: (("chain", "draw", "obs"), pointwise.loglik)}
    idata["posterior"] = xr.DataTree(posterior)
    idata[SAMPLE_SPACE] = xr.DataTree(raw)
    idata["log_likelihood"] = xr.DataTree(
        xr.Dataset(loglik, coords={"chain": raw["chain"], "draw": raw["draw"]})
    )


def current_layout(tree: xr.DataTree, named: Mapping[str, np.ndarray]) -> xr.DataTree:
    """A loaded DataTree in this module's layout, its posterior in the table's order.

    A fit saved by an earlier bayesmix kept the sampler's variables in
    ``posterior`` (the model's parameters among them in the user's units, as
    ``b_<effect>``, ``sigma``, ``gamma``..., with ``u``) and, for two-level
    models, both ``y`` and ``y_school`` in ``log_likelihood``. Such a tree
    gets the named draws and ``u`` as its ``posterior``, its old posterior
    as ``sample_space`` and ``y`` alone as its log-likelihood (the
    conditional school level is the sum of ``y`` over a school's students,
    see :func:`bayesmix.analysis.loo.loo_data`). Its class shares per draw
    were not saved and are not made up: it has no ``class_share``.
    """
    groups = {name: tree[name].to_dataset() for name in tree.children}
    old = groups["posterior"]
    if SAMPLE_SPACE not in groups:
        residuals = old[RESIDUALS] if RESIDUALS in old else None
        groups[SAMPLE_SPACE] = old
        groups["posterior"] = paper_posterior(named, old, residuals, None, None)
        loglik = groups["log_likelihood"]
        if STUDENT_LOGLIK in loglik:
            groups["log_likelihood"] = loglik[[STUDENT_LOGLIK]]
    else:
        # a zarr store lists variables in no particular order; the table's order is the
        # one a reader of az.summary expects
        rest = [v for v in old.data_vars if v not in named]
        groups["posterior"] = old[[*named, *rest]]
    order = ["posterior", *(g for g in groups if g != "posterior")]
    return xr.DataTree.from_dict({f"/{name}": groups[name] for name in order})
