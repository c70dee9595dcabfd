"""Compiled, numpy-facing versions of the likelihood's graphs.

The ML objective and its gradient, the quadrature's objective, posterior
and moments, each cluster's log-likelihood and the pointwise
log-likelihood, compiled by pytensor's numba backend or by XLA through JAX.
They are cached per model structure so that a second fit of the same spec
does not recompile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache, partial

import numpy as np
import pytensor
import pytensor.tensor as pt

from bayesmix.cache.xla import export_key, exported_function, persistent_jax_cache
from bayesmix.density.fused import register_jax
from bayesmix.density.hermite import gauss_hermite, quadrature_loglik
from bayesmix.density.likelihood import gaussian_multilevel_loglik, model_log_joint, total_loglik
from bayesmix.density.primitives import segment_sum
from bayesmix.model.params import Layout, Params


def _structure(lay: Layout) -> Layout:
    """The layout without labels, so that cache keys depend on structure only."""
    # sampling weights are data: the same compiled functions serve weighted fits
    bare = dataclasses.replace(lay.spec, name="", description="", weights=None)
    return Layout(bare, lay.group_levels)


BACKENDS = ("jax", "numba")
"""Compilers of the ML objectives: XLA through JAX, or pytensor's default (numba)."""


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    return backend


def _mode(backend: str) -> str:
    # Named, not pytensor's configured default: a user's pytensor.config.mode must not
    # change the compiler behind backend="numba", nor what the caches below keep.
    # XLA fuses the (observations x nodes x classes) elementwise chain into
    # vectorised loops with static shapes, where pytensor's numba loops call
    # scalar exponentials and logarithms one value at a time.
    if backend != "jax":
        return "NUMBA"
    persistent_jax_cache()
    register_jax()
    return "JAX"


def _typed_inputs(
    shapes: tuple[tuple[int, ...], ...] | None, names: tuple[tuple[str, str, int], ...]
) -> list[pt.TensorVariable]:
    """Input tensors ``(name, dtype, ndim)``: of the given static shapes, or of any shape."""
    if shapes is None:
        return [pt.tensor(name, dtype=dt, shape=(None,) * nd) for name, dt, nd in names]
    return [
        pt.tensor(name, dtype=dt, shape=shape)
        for (name, dt, _), shape in zip(names, shapes, strict=True)
    ]


_DATA_NAMES = (
    ("y", "float64", 1),
    ("F", "float64", 2),
    ("R", "float64", 2),
    ("Z", "float64", 2),
    ("V", "float64", 2),
    ("bounds", "int64", 1),
)


# the quadrature takes the observation-level data without bounds, then per-cluster inputs
_QUAD_NAMES = (
    *_DATA_NAMES[:5],
    ("cluster", "int64", 1),
    ("weight", "float64", 1),
    ("W", "float64", 2),
    ("row_weight", "float64", 1),
    ("centre", "float64", 2),
    ("scale", "float64", 3),
)


def _shapes(arrays) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(k) for k in np.shape(a)) for a in arrays)


def _compile_shapes(
    backend: str, args: tuple[np.ndarray, ...] | None
) -> tuple[tuple[int, ...], ...] | None:
    """Static input shapes to compile for: those of ``args`` for JAX, none for numba."""
    _check_backend(backend)
    if backend != "jax":
        return None
    if args is None:
        raise ValueError("the JAX backend compiles for given data: pass args")
    return _shapes(args)


def _quadrature_names(lay: Layout) -> tuple[tuple[str, str, int], ...]:
    extra = int(lay.spec.between_classes > 1)
    return tuple(
        (name, dt, nd + extra if name in ("centre", "scale") else nd)
        for name, dt, nd in _QUAD_NAMES
    )


QUADRATURE_OUTPUTS = ("value_and_grad", "posterior", "moments")
"""The compiled quadrature functions, in the order :func:`quadrature_functions` returns them."""


def _quadrature_graph(
    lay: Layout, points: int, shapes: tuple[tuple[int, ...], ...] | None
) -> tuple[list[pt.TensorVariable], dict[str, list[pt.TensorVariable]]]:
    """The quadrature's inputs (``theta`` first) and the outputs of each function."""
    theta = pt.tensor("theta", dtype="float64", shape=(lay.n_params,))
    inputs = _typed_inputs(shapes, _quadrature_names(lay))
    y, F, R, Z, V, cluster, weight, W, row_weight, centre, scale = inputs
    nodes, logw = gauss_hermite(points, lay.n_random)
    per_cluster, mean, cov, post_class, post_between = quadrature_loglik(
        y,
        F,
        R,
        Z,
        V,
        cluster,
        lay.unpack(theta, pt),
        lay.n_outcome_random,
        nodes,
        logw,
        centre,
        scale,
        W=W,
        between=lay.spec.between_classes,
        row_weight=row_weight,
    )
    # the school sampling weights, and 0 for the padding clusters of equal-shaped chunks
    loglik = pt.sum(weight * per_cluster)
    # The optimiser calls the first and the node adaptation the last; the class
    # probabilities cost another pass of exponentials over the (classes, nodes,
    # observations) array and are needed only for the results.
    outputs = {
        "value_and_grad": [loglik, pytensor.grad(loglik, theta)],
        "posterior": [loglik, mean, cov, post_class, per_cluster, post_between],
        "moments": [loglik, mean, cov],
    }
    return [theta, *inputs], outputs


@lru_cache(maxsize=32)
def _quadrature_functions(
    lay: Layout, points: int, shapes: tuple[tuple[int, ...], ...] | None, backend: str
) -> tuple[Callable[..., list[np.ndarray]], ...]:
    graph = lru_cache(maxsize=1)(lambda: _quadrature_graph(lay, points, shapes))
    mode = _mode(backend)

    def compiled(name: str) -> Callable[..., list[np.ndarray]]:
        inputs, outputs = graph()
        return _reentrant(
            pytensor.function(
                inputs, outputs[name], trust_input=True, on_unused_input="ignore", mode=mode
            )
        )

    if shapes is None:
        return tuple(compiled(name) for name in QUADRATURE_OUTPUTS)
    # JAX: exported once per structure and shapes, and loaded by later processes
    dtypes = ["float64"] + [dt for _, dt, _ in _quadrature_names(lay)]
    arguments = list(zip([(lay.n_params,), *shapes], dtypes, strict=True))
    return tuple(
        exported_function(
            export_key("quadrature", name, lay, points, shapes),
            partial(compiled, name),
            arguments,
        )
        for name in QUADRATURE_OUTPUTS
    )


def _reentrant(fn: Callable[..., list[np.ndarray]]) -> Callable[..., list[np.ndarray]]:
    """The compiled XLA function inside a JAX-mode pytensor function.

    A pytensor function passes its inputs and outputs through storage cells
    that concurrent calls would overwrite; the jitted function it wraps
    takes arguments and returns (asynchronous) arrays, and can run in
    several threads at once. Other modes are returned as they are.
    """
    jitted = getattr(getattr(fn, "vm", None), "jit_fn", None)
    return jitted if jitted is not None else fn


def quadrature_functions(
    lay: Layout, points: int, args: tuple[np.ndarray, ...], backend: str = "jax"
) -> tuple[Callable[..., list[np.ndarray]], ...]:
    """Compiled quadrature objective, posterior and moments for data shaped like ``args``.

    ``args`` are ``(y, F, R, Z, V, cluster, weight, W, row_weight, centre, scale)``,
    with ``weight`` (J,) the clusters' weights in the log-likelihood (their
    sampling weights, 0 for padding), ``W`` (J, m2) the school design of the
    level-2 classes and ``row_weight`` (n,) the students' sampling weights
    (ones without weights).
    The JAX backend compiles for their shapes (one compilation per data
    size), the numba backend for any shape.

    Returns
    -------
    value_and_grad : callable
        ``f(theta, *args) -> [loglik, grad]``, the weighted sum over
        clusters. The nodes sit at
        ``centre + scale z``; the gradient holds them fixed (as in adaptive
        quadrature, where they are updated between optimisation rounds).
    posterior : callable
        ``f(theta, *args) -> [loglik, means, covariances, class probs, per-cluster,
        level-2 class probs]``: posterior means (J, d) and covariances (J, d, d)
        of the standardised school residuals under the quadrature,
        P(C_ij = c | y_j) (n, K), each cluster's log-likelihood (J,) and
        P(D_j = d | y_j) (J, L).
    moments : callable
        ``f(theta, *args) -> [loglik, means, covariances]``, what the node
        adaptation needs, without the class probabilities' extra pass.
    """
    shapes = _compile_shapes(backend, args)
    return _quadrature_functions(_structure(lay), points, shapes, backend)


def _inputs() -> tuple[pt.TensorVariable, ...]:
    return tuple(_typed_inputs(None, _DATA_NAMES))


def _exported_numpy(
    name: str,
    lay: Layout,
    shapes: tuple[tuple[int, ...], ...],
    dtypes: list[str],
    build: Callable[[], Callable[..., list[np.ndarray]]],
) -> Callable[..., list[np.ndarray]]:
    """A JAX-compiled function kept as an export (see :func:`exported_function`), taking
    and returning numpy arrays as the pytensor function it replaces does."""
    fn = exported_function(
        export_key(name, lay, shapes), build, list(zip(shapes, dtypes, strict=True))
    )

    def call(*args: np.ndarray) -> list[np.ndarray]:
        inputs = (np.asarray(a, dtype=dt) for a, dt in zip(args, dtypes, strict=True))
        return [np.asarray(out) for out in fn(*inputs)]

    return call


_WEIGHTED_NAMES = (*_DATA_NAMES, ("weight", "float64", 1))


@lru_cache(maxsize=64)
def _objective(
    lay: Layout, shapes: tuple[tuple[int, ...], ...] | None, backend: str, weighted: bool = False
) -> Callable[..., list[np.ndarray]]:
    names = _WEIGHTED_NAMES if weighted else _DATA_NAMES

    def build() -> Callable[..., list[np.ndarray]]:
        theta = pt.tensor("theta", dtype="float64", shape=(lay.n_params,))
        data = _typed_inputs(shapes, names)
        loglik = total_loglik(lay, lay.unpack(theta, pt), *data)
        grad = pytensor.grad(loglik, theta)
        fn = pytensor.function(
            [theta, *data],
            [loglik, grad],
            trust_input=True,
            on_unused_input="ignore",
            mode=_mode(backend),
        )
        return _reentrant(fn) if shapes is not None else fn

    if shapes is None:
        return build()
    dtypes = ["float64"] + [dt for _, dt, _ in names]
    name = "weighted_objective" if weighted else "objective"
    return _exported_numpy(name, lay, ((lay.n_params,), *shapes), dtypes, build)


def weighted_loglik_and_grad(
    lay: Layout, args: tuple[np.ndarray, ...] | None = None, backend: str = "numba"
) -> Callable[..., list[np.ndarray]]:
    """Compiled ``f(theta, y, F, R, Z, V, bounds, weight) -> [loglik, gradient]`` of a
    mixture without school residuals, each observation's log-likelihood times its
    sampling weight (:mod:`bayesmix.model.weights`); otherwise as :func:`loglik_and_grad`."""
    shapes = _compile_shapes(backend, args)
    return _objective(_structure(lay), shapes, backend, weighted=True)


def loglik_and_grad(
    lay: Layout, args: tuple[np.ndarray, ...] | None = None, backend: str = "numba"
) -> Callable[..., list[np.ndarray]]:
    """Compiled ``f(theta, y, F, R, Z, V, bounds) -> [loglik, gradient]``.

    ``theta`` is the optimiser's vector (see :class:`~bayesmix.model.params.Layout`),
    random effects and classes integrated out. Inputs must be contiguous
    float64 arrays (int64 ``bounds``). The JAX backend compiles for the shapes
    of ``args`` (the data the function will be called with), the numba backend
    for any shape.
    """
    shapes = _compile_shapes(backend, args)
    return _objective(_structure(lay), shapes, backend)


@lru_cache(maxsize=32)
def _cluster_loglik(lay: Layout) -> Callable[..., list[np.ndarray]]:
    theta = pt.tensor("theta", dtype="float64", shape=(lay.n_params,))
    y, F, R, Z, V, bounds = _inputs()
    params = lay.unpack(theta, pt)
    if lay.spec.random:
        out = gaussian_multilevel_loglik(y, F, R, V, bounds, params, lay.n_random)
    else:
        out = segment_sum(pt.logsumexp(model_log_joint(y, F, Z, V, params), axis=1), bounds, pt)
    return pytensor.function(
        [theta, y, F, R, Z, V, bounds], out, on_unused_input="ignore", mode=_mode("numba")
    )


def cluster_loglik(lay: Layout) -> Callable[..., np.ndarray]:
    """Compiled ``f(theta, y, F, R, Z, V, bounds)`` -> each cluster's log-likelihood (J,).

    For the models without quadrature: the exact Gaussian marginal of the
    conventional two-level model (school residuals integrated out), or the
    sum of the students' class mixtures when there are no school residuals.
    """
    return _cluster_loglik(_structure(lay))


_POINTWISE_NAMES = (
    ("beta", "float64", 2),
    ("lsig", "float64", 2),
    ("gamma", "float64", 2),
    ("offset", "float64", 1),
    ("member_offset", "float64", 2),
    *(_DATA_NAMES[i] for i in (0, 1, 3, 4)),
)


@lru_cache(maxsize=64)
def _pointwise(
    lay: Layout, shapes: tuple[tuple[int, ...], ...] | None, backend: str
) -> Callable[..., list[np.ndarray]]:
    def build() -> Callable[..., list[np.ndarray]]:
        inputs = _typed_inputs(shapes, _POINTWISE_NAMES)
        beta, lsig, gamma, offset, member_offset, y, F, Z, V = inputs
        params = Params(beta=beta, lsig=lsig, gamma=gamma, chol=pt.zeros((0, 0)))
        joint = model_log_joint(y, F, Z, V, params, offset, member_offset)
        loglik = pt.logsumexp(joint, axis=1)
        posterior = pt.exp(joint - loglik[:, None])
        fn = pytensor.function(
            inputs, [loglik, posterior], on_unused_input="ignore", mode=_mode(backend)
        )
        return _reentrant(fn) if shapes is not None else fn

    if shapes is None:
        return build()
    dtypes = [dt for _, dt, _ in _POINTWISE_NAMES]
    return _exported_numpy("pointwise", lay, shapes, dtypes, build)


def pointwise(
    lay: Layout, backend: str = "numba", args: tuple[np.ndarray, ...] | None = None
) -> Callable[..., list[np.ndarray]]:
    """Compiled ``f(beta, lsig, gamma, offset, member_offset, y, F, Z, V)``.

    Returns ``[loglik_i, P(C_i = c | y_i)]`` conditional on the school
    residuals through ``offset = R u`` and ``member_offset`` (n, K-1) (zeros for
    single-level models). The JAX backend compiles for the shapes of
    ``args`` (arguments the function will be called with), the numba
    backend for any shape.
    """
    shapes = _compile_shapes(backend, args)
    return _pointwise(_structure(lay), shapes, backend)
