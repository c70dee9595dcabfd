"""The log-density's primitives against scipy in numpy, pytensor and JAX, each written once."""

from __future__ import annotations

import ast
import itertools
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import special, stats

import bayesmix
from bayesmix.density.fused import normal_mixture_logp
from bayesmix.density.primitives import (
    log_softmax_ref,
    log_softmax_ref_binary,
    log_softmax_ref_clipped,
    normal_logpdf,
    reference_logits,
    school_gaussian_logpdf,
    std_normal_logpdf,
)

# the package's JAX paths run in float64, which pytensor's JAX backend turns on as it loads
jax.config.update("jax_enable_x64", True)

NAMESPACES = ("numpy", "pytensor", "jax")


def _evaluate(namespace: str, f: Callable[..., Any], *arrays: np.ndarray) -> np.ndarray:
    """``f(*arrays, xp)`` computed in one namespace, as a numpy array."""
    if namespace == "numpy":
        return np.asarray(f(*arrays, np))
    if namespace == "jax":
        return np.asarray(f(*(jnp.asarray(a) for a in arrays), jnp))
    inputs = [pt.tensor(f"a{i}", dtype=a.dtype, shape=a.shape) for i, a in enumerate(arrays)]
    out = f(*inputs, pt)
    f_pt = pytensor.function(inputs, out, mode="NUMBA", on_unused_input="ignore")
    return np.asarray(f_pt(*arrays))


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax_against_scipy(namespace: str, k: int, axis: int) -> None:
    # the reference class is the last, with its logit 0 after the others
    rng = np.random.default_rng(k)
    eta = 3.0 * rng.normal(size=(6, k - 1) if axis == -1 else (k - 1, 6))
    eta[0] = 40.0
    zero = np.zeros((6, 1) if axis == -1 else (1, 6))
    want = special.log_softmax(np.concatenate([eta, zero], axis=axis), axis=axis)
    got = _evaluate(namespace, lambda e, xp: log_softmax_ref(e, xp, axis=axis), eta)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    logits = _evaluate(namespace, lambda e, xp: reference_logits(e, xp, axis=axis), eta)
    np.testing.assert_array_equal(logits, np.concatenate([eta, zero], axis=axis))


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_two_class_forms_against_scipy(namespace: str) -> None:
    eta = np.linspace(-60.0, 60.0, 49)[:, None]
    want = special.log_softmax(np.concatenate([eta, np.zeros_like(eta)], axis=1), axis=1)
    got = _evaluate(namespace, log_softmax_ref_binary, eta)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    # 1 - sigmoid loses the digits of a probability near 0, and the clip moves the
    # probabilities beyond it: both by less than 1e-13 on the probability scale
    clipped = _evaluate(namespace, log_softmax_ref_clipped, eta)
    np.testing.assert_allclose(np.exp(clipped), np.exp(want), rtol=0.0, atol=1e-13)
    inside = np.abs(eta[:, 0]) <= 10.0
    np.testing.assert_allclose(clipped[inside], want[inside], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_normal_logpdf_against_scipy(namespace: str) -> None:
    rng = np.random.default_rng(1)
    y, mu = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    log_var = rng.normal(size=3)
    want = stats.norm.logpdf(y, mu, np.exp(0.5 * log_var))
    got = _evaluate(namespace, lambda r, v, xp: normal_logpdf(r, v, xp), y - mu, log_var)
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("d", [1, 3])
def test_standard_normal_against_scipy(namespace: str, d: int) -> None:
    z = np.random.default_rng(d).normal(size=(4, 7, d))
    want = stats.multivariate_normal.logpdf(z, np.zeros(d), np.eye(d))
    got = _evaluate(namespace, lambda a, xp: std_normal_logpdf(a, xp, d), z)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def _schools(r: int) -> tuple[np.ndarray, ...]:
    """Residuals, log variances, design, Cholesky factor and bounds of five schools."""
    rng = np.random.default_rng(r)
    sizes = np.array([1, 4, 7, 2, 5])
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(bounds[-1])
    R = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])[:, :r]
    chol = np.tril(rng.normal(size=(r, r)))
    if r > 1:
        # a variance at 0 leaves a zero column: a singular factor
        chol[:, -1] = 0.0
    np.fill_diagonal(chol, np.abs(np.diag(chol)))
    return rng.normal(size=n), 0.3 * rng.normal(size=n), R, chol, bounds


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("r", [0, 1, 3])
def test_school_gaussian_marginal_against_scipy(namespace: str, r: int) -> None:
    resid, log_var, R, chol, bounds = _schools(r)
    want = []
    for lo, hi in itertools.pairwise(bounds):
        load = R[lo:hi] @ chol
        cov = np.diag(np.exp(log_var[lo:hi])) + load @ load.T
        want.append(stats.multivariate_normal.logpdf(resid[lo:hi], np.zeros(hi - lo), cov))

    def marginal(e: Any, v: Any, design: Any, factor: Any, xp: Any) -> Any:
        return school_gaussian_logpdf(e, v, design, factor, bounds, xp, r)

    got = _evaluate(namespace, marginal, resid, log_var, R, chol)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_numba_kernel_against_primitives(k: int) -> None:
    # the fused kernel keeps its own loop: its density is the primitives' class mixture
    rng = np.random.default_rng(k)
    n = 300
    y, mu = rng.normal(size=n), rng.normal(size=(n, k))
    lsig, eta = 0.3 * rng.normal(size=k), 2.0 * rng.normal(size=(n, k - 1))
    vs = [pt.vector("y"), pt.matrix("mu"), pt.vector("lsig"), pt.matrix("eta")]
    got = pytensor.function(vs, normal_mixture_logp(*vs)[0], mode="NUMBA")(y, mu, lsig, eta)
    joint = log_softmax_ref(eta, np) + normal_logpdf(y[:, None] - mu, lsig, np)
    np.testing.assert_allclose(got, special.logsumexp(joint, axis=1), rtol=1e-13)


# --- each primitive is written once --------------------------------------------------------

PACKAGE = Path(bayesmix.__file__).parent
PRIMITIVES = PACKAGE / "density" / "primitives.py"

NORMAL_CONSTANTS = tuple(
    float(v)
    for v in (
        math.log(2 * math.pi),
        0.5 * math.log(2 * math.pi),
        math.sqrt(2 * math.pi),
        1 / math.sqrt(2 * math.pi),
    )
)
SOFTMAX_FUNCTIONS = {"log_softmax", "softplus", "sigmoid", "expit", "log_expit", "log_sigmoid"}
CONCATENATIONS = {"concatenate", "column_stack", "hstack", "append"}
ZEROS = {"zeros", "zeros_like"}

EXEMPT = {
    # the numba kernel keeps its own loop, its normal constant included;
    # test_numba_kernel_against_primitives checks it against the primitives
    ("density/fused.py", "_register_numba"),
    # Imhof's inversion of a weighted chi-square's characteristic function divides by pi;
    # no normal density is written there
    ("analysis/lmr.py", "weighted_chi2_sf"),
}


def _name(node: ast.AST) -> str:
    """The called or referenced name: ``f`` of ``f(...)``, ``np.f(...)`` or ``a.b.f``."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _zero_blocks(top: ast.AST) -> set[str]:
    """Names that ``top`` assigns a block of zeros to."""
    return {
        target.id
        for node in ast.walk(top)
        if isinstance(node, ast.Assign) and _name(node.value) in ZEROS
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _is_zeros(node: ast.AST, zero_names: set[str]) -> bool:
    if isinstance(node, ast.Call):
        return _name(node) in ZEROS
    return isinstance(node, ast.Name) and node.id in zero_names


def _findings(tree: ast.AST) -> Iterator[tuple[str, str, int]]:
    """(what, enclosing top-level function, line) of every mark of a primitive."""
    for top in ast.iter_child_nodes(tree):
        owner = getattr(top, "name", "<module>")
        zero_names = _zero_blocks(top)
        for node in ast.walk(top):
            name = _name(node)
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                if any(math.isclose(node.value, c, rel_tol=1e-9) for c in NORMAL_CONSTANTS):
                    yield "normal constant", owner, node.lineno
            elif isinstance(node, (ast.Name, ast.Attribute)) and (
                name == "pi" or "2pi" in name.lower()
            ):
                yield "normal constant", owner, node.lineno
            elif isinstance(node, ast.Call) and name in SOFTMAX_FUNCTIONS:
                yield "log-softmax", owner, node.lineno
            elif isinstance(node, ast.Call) and name in CONCATENATIONS and node.args:
                pieces = node.args[0]
                if isinstance(pieces, (ast.List, ast.Tuple)) and _is_zeros(
                    pieces.elts[-1], zero_names
                ):
                    yield "reference logit", owner, node.lineno


def test_each_primitive_is_written_once() -> None:
    """No module but ``density/primitives.py`` writes a density primitive again.

    The criterion, on the syntax tree of every module of the package (so
    comments and docstrings do not count), looks for the mark each
    primitive cannot be written without:

    * the normal log density, in any form (a residual's, the standard
      multivariate normal's, the school marginal, Gauss-Hermite weights
      against phi), needs ``log(2 pi)``: no other module may mention ``pi``,
      a name containing ``2pi`` (such as ``LOG_2PI``), or a float literal
      equal to ``log(2 pi)``, half of it, ``sqrt(2 pi)`` or its inverse;
    * a log-softmax against a reference class needs the reference logit 0
      after the others: no other module may concatenate a block of zeros
      last (``concatenate``, ``column_stack``, ``hstack``, ``append`` whose
      last piece is a ``zeros``/``zeros_like`` call or a name assigned one in
      the same function), nor call the functions that
      stand for a log-softmax or its two-class forms (``log_softmax``,
      ``softplus``, ``sigmoid``, ``expit``, ``log_expit``, ``log_sigmoid``).

    The exemptions, each with its reason, are in :data:`EXEMPT`. The
    detector itself is checked on ``primitives.py``, where it must find
    every mark.
    """
    found = {what for what, _, _ in _findings(ast.parse(PRIMITIVES.read_text()))}
    assert found == {"normal constant", "log-softmax", "reference logit"}
    copies = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if path == PRIMITIVES:
            continue
        for what, owner, line in _findings(ast.parse(path.read_text())):
            if (relative, owner) not in EXEMPT:
                copies.append(f"{relative}:{line} ({owner}): {what}")
    assert copies == []
