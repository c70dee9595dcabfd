"""Tests of bayesmix.model.params: names, counts, layout transforms and relabelling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayesmix.model.build import load_spec, make_spec
from bayesmix.model.params import (
    Layout,
    Params,
    count_params,
    from_named,
    layout,
    order_permutation,
    param_names,
    relabel,
)
from bayesmix.model.spec import Spec
from tests.support.paths import MODELS

FIG1 = MODELS / "fig1.toml"
FIG1_NAMES = [
    "1[c1]", "1[c2]", "x[c1]", "x[c2]", "sigma2[c1]", "sigma2[c2]", "C#1 ~ 1", "C#1 ~ x",
]  # fmt: skip
TWO_LEVEL_NAMES = [
    "1", "w", "x", "x:w", "var(u_1)", "var(u_x)", "cov(u_1,u_x)", "sigma2",
]  # fmt: skip
# A fixed positive-definite 3 x 3 covariance (eigenvalues about 0.59, 1.51, 2.20).
COV3 = np.array([[2.0, 0.3, -0.4], [0.3, 1.5, 0.2], [-0.4, 0.2, 0.8]])


@pytest.fixture
def spec3() -> Spec:
    """Three classes, class-varying intercept and slope, shared z, class variances."""
    return make_spec(
        "y ~ x + z",
        classes=3,
        class_varying=["1", "x"],
        residual_variance="class",
        membership="x + w",
    )


def _two_level(**kwargs: object) -> Spec:
    """y ~ x with intercept and slope regressed on w and random in clusters g."""
    return make_spec("y ~ x", cluster="g", level2={"1": "w", "x": "w"}, random=["1", "x"], **kwargs)


def _spec_cov3() -> Spec:
    """Three random terms with an unstructured covariance."""
    return make_spec("y ~ x + z", cluster="g", random=["1", "x", "z"])


def _cov3_natural() -> np.ndarray:
    """Natural values for :func:`_spec_cov3`: betas, variances, covariances, sigma2."""
    variances = [COV3[0, 0], COV3[1, 1], COV3[2, 2]]
    covariances = [COV3[0, 1], COV3[0, 2], COV3[1, 2]]
    return np.array([1.0, 0.5, -0.2, *variances, *covariances, 0.7])


def _softmax_probs(Z: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    logits = np.column_stack([Z @ gamma.T, np.zeros(Z.shape[0])])
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    return prob / prob.sum(axis=1, keepdims=True)


def _params3(rng: np.random.Generator) -> Params:
    """Random structured parameters for ``spec3`` (z shared, class variances)."""
    beta = rng.normal(size=(3, 3))
    beta[:, 2] = beta[0, 2]  # z is shared
    return Params(
        beta=beta,
        lsig=np.log(rng.uniform(0.5, 2.0, size=(3, 1))),
        gamma=rng.normal(size=(2, 3)),
        chol=np.zeros((0, 0)),
    )


# --- names and counts --------------------------------------------------------------------------


def test_fig1_param_names_exactly() -> None:
    spec = load_spec(FIG1)
    assert param_names(spec) == FIG1_NAMES
    assert count_params(spec) == 8
    assert layout(spec).names == FIG1_NAMES
    assert layout(spec).n_params == 8


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (make_spec("y ~ x"), ["1", "x", "sigma2"]),
        (make_spec("y ~ 0 + x", classes=2), ["x[c1]", "x[c2]", "sigma2", "C#1 ~ 1"]),
        (
            make_spec("y ~ x + z", classes=3, class_varying=["x"], membership="z"),
            [
                "1", "x[c1]", "x[c2]", "x[c3]", "z", "sigma2",
                "C#1 ~ 1", "C#1 ~ z", "C#2 ~ 1", "C#2 ~ z",
            ],
        ),
        (
            make_spec("y ~ x + x:w", classes=2, class_varying=["x:w"]),
            ["1", "x", "x:w[c1]", "x:w[c2]", "sigma2", "C#1 ~ 1"],
        ),
        (_two_level(), TWO_LEVEL_NAMES),
        (
            _two_level(covariance="diagonal"),
            ["1", "w", "x", "x:w", "var(u_1)", "var(u_x)", "sigma2"],
        ),
        (
            _two_level(residual_covariates="x"),
            [
                "1", "w", "x", "x:w", "var(u_1)", "var(u_x)", "cov(u_1,u_x)",
                "log(sigma2) ~ 1", "log(sigma2) ~ x",
            ],
        ),
        (
            make_spec("y ~ 1", cluster="g", random="1"),
            ["1", "var(u_1)", "sigma2"],
        ),
        (
            make_spec(
                "y ~ x",
                classes=2,
                cluster="g",
                level2={"1": "w1 + w2", "x": "w1"},
                class_varying=["1", "x:w1"],
            ),
            ["1[c1]", "1[c2]", "w1", "w2", "x", "x:w1[c1]", "x:w1[c2]", "sigma2", "C#1 ~ 1"],
        ),
    ],
)  # fmt: skip
def test_param_names(spec: Spec, names: list[str]) -> None:
    assert param_names(spec) == names
    assert count_params(spec) == len(names)
    assert layout(spec).names == names


def test_residual_group_names_follow_the_levels() -> None:
    spec = _two_level(residual_groups="v")
    lay = Layout(spec, group_levels=(0, 1))
    assert lay.names == [*TWO_LEVEL_NAMES[:-1], "sigma2[v=0]", "sigma2[v=1]"]
    assert lay.n_params == 9
    assert param_names(spec, (0, 1)) == lay.names
    assert count_params(spec, (0, 1)) == 9
    three = Layout(spec, group_levels=(1, 2, 5))
    assert three.names[-3:] == ["sigma2[v=1]", "sigma2[v=2]", "sigma2[v=5]"]
    assert three.residual_width == 3


def test_layout_helper_and_frozen() -> None:
    spec = _two_level()
    lay = layout(spec, [0, 1])
    assert lay == Layout(spec, (0, 1))
    assert lay.group_levels == (0, 1)
    assert lay.n_random == 2
    assert lay.residual_width == 1
    assert not lay.log_residual
    assert layout(_two_level(residual_covariates="x")).log_residual
    with pytest.raises(dataclasses.FrozenInstanceError):
        lay.spec = make_spec("y ~ x")  # type: ignore[misc]


def test_count_params_three_classes(spec3: Spec) -> None:
    # intercept and x: 2 x 3, z: 1, sigma2: 3, membership: 2 x 3
    assert count_params(spec3) == 16
    assert count_params(load_spec(FIG1, classes=3)) == 13  # 6 + 3 + 2 x 2
    assert count_params(load_spec(FIG1, classes=1)) == 3


def test_variance_names() -> None:
    assert layout(load_spec(FIG1)).variance_names() == ["sigma2[c1]", "sigma2[c2]"]
    assert layout(_two_level()).variance_names() == ["var(u_1)", "var(u_x)", "sigma2"]
    # log-linear residual coefficients are not variances
    assert layout(_two_level(residual_covariates="x")).variance_names() == [
        "var(u_1)",
        "var(u_x)",
    ]
    groups = Layout(_two_level(residual_groups="v"), (0, 1))
    assert groups.variance_names() == ["var(u_1)", "var(u_x)", "sigma2[v=0]", "sigma2[v=1]"]


# --- Layout.unpack / Layout.pack ---------------------------------------------------------------


def test_unpack_fig1_structure() -> None:
    lay = layout(load_spec(FIG1))
    vec = np.array([3.0, 0.0, -1.1, 0.5, 1.0, 2.0, 0.25, 1.5])
    natural = lay.unpack(vec, natural=True)
    np.testing.assert_array_equal(natural.beta, [[3.0, -1.1], [0.0, 0.5]])
    np.testing.assert_allclose(natural.sigma2, [1.0, 2.0], rtol=1e-15)
    np.testing.assert_allclose(natural.lsig, [[0.0], [np.log(2.0)]], rtol=1e-15)
    np.testing.assert_array_equal(natural.gamma, [[0.25, 1.5]])
    assert natural.chol.shape == (0, 0)
    logged = lay.unpack(vec)  # theta: log variances
    np.testing.assert_array_equal(logged.lsig, [[1.0], [2.0]])
    np.testing.assert_allclose(logged.sigma2, np.exp([1.0, 2.0]), rtol=1e-15)
    np.testing.assert_array_equal(logged.beta, natural.beta)
    np.testing.assert_array_equal(logged.gamma, natural.gamma)


def test_unpack_shared_terms_and_common_variance() -> None:
    spec = make_spec("y ~ x + z", classes=3, class_varying=["x"], membership="z")
    vec = np.arange(1.0, 11.0)  # 1, x[c1..c3], z, sigma2, C#1 ~ 1, C#1 ~ z, C#2 ~ 1, C#2 ~ z
    params = layout(spec).unpack(vec, natural=True)
    np.testing.assert_array_equal(params.beta, [[1, 2, 5], [1, 3, 5], [1, 4, 5]])
    np.testing.assert_allclose(params.sigma2, [6, 6, 6], rtol=1e-15)
    assert params.lsig.shape == (3, 1)
    np.testing.assert_array_equal(params.gamma, [[7, 8], [9, 10]])


def test_unpack_single_class() -> None:
    params = layout(make_spec("y ~ x")).unpack(np.array([1.0, 2.0, np.log(4.0)]))
    np.testing.assert_array_equal(params.beta, [[1.0, 2.0]])
    np.testing.assert_allclose(params.sigma2, [4.0], rtol=1e-15)
    assert params.gamma.shape == (0, 1)
    assert params.chol.shape == (0, 0)


def test_unpack_class_varying_level2_effects() -> None:
    spec = make_spec(
        "y ~ x", classes=2, cluster="g", level2={"1": "w1 + w2", "x": "w1"},
        class_varying=["1", "x:w1"],
    )  # fmt: skip
    # 1[c1], 1[c2], w1, w2, x, x:w1[c1], x:w1[c2], sigma2, C#1 ~ 1
    params = layout(spec).unpack(np.arange(1.0, 10.0))
    np.testing.assert_array_equal(params.beta, [[1, 3, 4, 5, 6], [2, 3, 4, 5, 7]])
    np.testing.assert_array_equal(params.lsig, [[8.0], [8.0]])
    np.testing.assert_array_equal(params.gamma, [[9.0]])


def test_unpack_two_level_theta_and_natural() -> None:
    lay = layout(_two_level())
    # 1, w, x, x:w, then theta holds Cholesky entries L00, L10, L11 and log sigma2
    theta = np.array([1.0, 0.5, 2.0, -0.3, 0.8, 0.25, 0.4, np.log(1.5)])
    params = lay.unpack(theta)
    np.testing.assert_array_equal(params.beta, [[1.0, 0.5, 2.0, -0.3]])
    np.testing.assert_array_equal(params.chol, [[0.8, 0.0], [0.25, 0.4]])
    np.testing.assert_allclose(params.sigma2, [1.5], rtol=1e-15)
    # natural values hold var(u_1), var(u_x), cov(u_1,u_x), sigma2
    natural = np.array([1.0, 0.5, 2.0, -0.3, 0.64, 0.2225, 0.2, 1.5])
    np.testing.assert_allclose(lay.to_natural(theta), natural, rtol=1e-14)
    nat = lay.unpack(natural, natural=True)
    np.testing.assert_allclose(nat.chol, [[0.8, 0.0], [0.25, 0.4]], rtol=1e-14)
    np.testing.assert_allclose(nat.chol @ nat.chol.T, [[0.64, 0.2], [0.2, 0.2225]], rtol=1e-14)
    np.testing.assert_allclose(nat.lsig, [[np.log(1.5)]], rtol=1e-15)


def test_unpack_diagonal_covariance() -> None:
    lay = layout(_two_level(covariance="diagonal"))
    theta = np.array([1.0, 0.5, 2.0, -0.3, 0.8, 0.4, 0.0])
    params = lay.unpack(theta)
    np.testing.assert_array_equal(params.chol, [[0.8, 0.0], [0.0, 0.4]])
    np.testing.assert_allclose(lay.to_natural(theta), [1.0, 0.5, 2.0, -0.3, 0.64, 0.16, 1.0])
    nat = lay.unpack(np.array([1.0, 0.5, 2.0, -0.3, 4.0, 9.0, 2.0]), natural=True)
    np.testing.assert_allclose(nat.chol, [[2.0, 0.0], [0.0, 3.0]], rtol=1e-15)
    np.testing.assert_allclose(
        lay.to_theta([1.0, 0.5, 2.0, -0.3, 4.0, 9.0, 2.0])[4:], [2, 3, np.log(2)]
    )


@pytest.mark.parametrize("natural", [True, False])
def test_pack_unpack_round_trip(spec3: Spec, natural: bool) -> None:
    lay = layout(spec3)
    rng = np.random.default_rng(7)
    vec = rng.normal(size=lay.n_params)
    if natural:
        vec[7:10] = rng.uniform(0.5, 2.0, size=3)  # sigma2[c1..c3]
    params = lay.unpack(vec, natural=natural)
    np.testing.assert_allclose(lay.pack(params, natural=natural), vec, rtol=1e-14)


@pytest.mark.parametrize("natural", [True, False])
def test_unpack_pack_round_trip_from_params(spec3: Spec, natural: bool) -> None:
    lay = layout(spec3)
    params = _params3(np.random.default_rng(8))
    back = lay.unpack(lay.pack(params, natural=natural), natural=natural)
    np.testing.assert_allclose(back.beta, params.beta, rtol=1e-14)
    np.testing.assert_allclose(back.lsig, params.lsig, rtol=1e-14)
    np.testing.assert_allclose(back.sigma2, params.sigma2, rtol=1e-14)
    np.testing.assert_allclose(back.gamma, params.gamma, rtol=1e-14)


@pytest.mark.parametrize("natural", [True, False])
def test_two_level_round_trip_from_params(natural: bool) -> None:
    lay = layout(_two_level(classes=2, class_varying=["1", "x"], membership="x"))
    assert lay.names == [
        "1[c1]", "1[c2]", "w", "x[c1]", "x[c2]", "x:w", "var(u_1)", "var(u_x)",
        "cov(u_1,u_x)", "sigma2", "C#1 ~ 1", "C#1 ~ x",
    ]  # fmt: skip
    params = Params(
        beta=np.array([[3.0, 0.5, -1.1, 0.2], [0.0, 0.5, 0.5, 0.2]]),
        lsig=np.full((2, 1), np.log(0.8)),
        gamma=np.array([[0.25, 1.5]]),
        chol=np.array([[0.9, 0.0], [-0.3, 0.6]]),
    )
    back = lay.unpack(lay.pack(params, natural=natural), natural=natural)
    np.testing.assert_allclose(back.beta, params.beta, rtol=1e-14)
    np.testing.assert_allclose(back.lsig, params.lsig, rtol=1e-14)
    np.testing.assert_allclose(back.gamma, params.gamma, rtol=1e-14)
    np.testing.assert_allclose(back.chol, params.chol, rtol=1e-14, atol=1e-15)


def test_log_and_natural_packing_differ_only_in_variances() -> None:
    spec = load_spec(FIG1)
    lay = layout(spec)
    params = from_named(dict(zip(FIG1_NAMES, [3, 0, -1.1, 0.5, 2.0, 0.5, 0, 1], strict=True)), spec)
    natural = lay.pack(params)
    logged = lay.pack(params, natural=False)
    np.testing.assert_allclose(natural, [3, 0, -1.1, 0.5, 2.0, 0.5, 0, 1], rtol=1e-15)
    np.testing.assert_allclose(logged[4:6], np.log([2.0, 0.5]), rtol=1e-15)
    np.testing.assert_array_equal(logged[[0, 1, 2, 3, 6, 7]], natural[[0, 1, 2, 3, 6, 7]])


def test_pack_takes_class_one_for_shared_effects(spec3: Spec) -> None:
    params = Params(
        beta=np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 99.0], [6.0, 7.0, -99.0]]),
        lsig=np.zeros((3, 1)),
        gamma=np.zeros((2, 3)),
        chol=np.zeros((0, 0)),
    )
    packed = layout(spec3).pack(params)
    np.testing.assert_array_equal(packed[:7], [1.0, 4.0, 6.0, 2.0, 5.0, 7.0, 3.0])
    np.testing.assert_array_equal(packed[7:10], [1.0, 1.0, 1.0])


def test_pack_theta_normalises_cholesky_signs() -> None:
    lay = layout(_two_level())
    chol = np.array([[-1.0, 0.0], [0.5, -2.0]])
    params = Params(
        beta=np.array([[1.0, 0.0, 2.0, 0.0]]), lsig=np.array([[0.3]]),
        gamma=np.zeros((0, 1)), chol=chol,
    )  # fmt: skip
    theta = lay.pack(params, natural=False)
    np.testing.assert_array_equal(theta[4:], [1.0, -0.5, 2.0, 0.3])
    back = lay.unpack(theta).chol
    np.testing.assert_allclose(back @ back.T, chol @ chol.T, rtol=1e-15)
    # natural values: var(u_1) = 1, var(u_x) = 0.25 + 4, cov = -0.5, sigma2 = exp(0.3)
    np.testing.assert_allclose(lay.pack(params)[4:], [1.0, 4.25, -0.5, np.exp(0.3)], rtol=1e-15)
    diag = layout(_two_level(covariance="diagonal"))
    np.testing.assert_array_equal(diag.pack(params, natural=False)[4:6], [1.0, 2.0])


# --- to_theta / to_natural ---------------------------------------------------------------------


def test_to_theta_to_natural_round_trip_fig1() -> None:
    lay = layout(load_spec(FIG1))
    natural = np.array([3.0, 0.0, -1.1, 0.5, 2.0, 0.5, 0.25, 1.5])
    theta = lay.to_theta(natural)
    np.testing.assert_allclose(
        theta, [3.0, 0.0, -1.1, 0.5, np.log(2.0), np.log(0.5), 0.25, 1.5], rtol=1e-15
    )
    np.testing.assert_allclose(lay.to_natural(theta), natural, rtol=1e-14)


def test_unstructured_3x3_round_trip() -> None:
    lay = layout(_spec_cov3())
    assert lay.names == [
        "1", "x", "z", "var(u_1)", "var(u_x)", "var(u_z)",
        "cov(u_1,u_x)", "cov(u_1,u_z)", "cov(u_x,u_z)", "sigma2",
    ]  # fmt: skip
    natural = _cov3_natural()
    theta = lay.to_theta(natural)
    # theta holds the lower Cholesky factor row by row: L00, L10, L11, L20, L21, L22
    lower = np.linalg.cholesky(COV3)[np.tril_indices(3)]
    np.testing.assert_allclose(theta[3:9], lower, rtol=1e-12)
    np.testing.assert_allclose(theta[[0, 1, 2]], [1.0, 0.5, -0.2], rtol=0)
    np.testing.assert_allclose(theta[9], np.log(0.7), rtol=1e-15)
    np.testing.assert_allclose(lay.to_natural(theta), natural, rtol=0, atol=1e-10)
    chol = lay.unpack(theta).chol
    np.testing.assert_allclose(chol @ chol.T, COV3, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(np.triu(chol, 1), np.zeros((3, 3)))
    # and back: theta -> natural -> theta
    np.testing.assert_allclose(lay.to_theta(lay.to_natural(theta)), theta, rtol=0, atol=1e-10)


def test_to_theta_of_a_singular_covariance() -> None:
    lay = layout(_two_level())
    beta = [1.0, 0.5, 2.0, -0.3]
    # var(u_x) = 0: the slope has no school residual
    theta = lay.to_theta(np.array([*beta, 1.0, 0.0, 0.0, 1.0]))
    np.testing.assert_array_equal(theta[4:], [1.0, 0.0, 0.0, 0.0])
    theta = lay.to_theta(np.array([*beta, 0.0, 4.0, 0.0, 1.0]))
    np.testing.assert_array_equal(theta[4:], [0.0, 0.0, 2.0, 0.0])
    np.testing.assert_allclose(lay.to_natural(theta), [*beta, 0.0, 4.0, 0.0, 1.0], rtol=1e-15)


def test_residual_covariates_stay_on_the_log_scale() -> None:
    lay = layout(_two_level(residual_covariates="x", covariance="diagonal"))
    vec = np.array([1.0, 0.5, 2.0, -0.3, 0.64, 0.16, -0.5, 0.7])
    params = lay.unpack(vec, natural=True)
    np.testing.assert_array_equal(params.lsig, [[-0.5, 0.7]])
    theta = lay.to_theta(vec)
    np.testing.assert_allclose(theta, [1.0, 0.5, 2.0, -0.3, 0.8, 0.4, -0.5, 0.7], rtol=1e-15)
    np.testing.assert_allclose(lay.to_natural(theta), vec, rtol=1e-15)


def test_residual_groups_unpack_to_shared_log_variances() -> None:
    spec = make_spec(
        "y ~ x", classes=2, cluster="g", random="1", residual_groups="v", membership="x"
    )
    lay = Layout(spec, group_levels=(0, 1))
    assert lay.names == [
        "1[c1]", "1[c2]", "x[c1]", "x[c2]", "var(u_1)",
        "sigma2[v=0]", "sigma2[v=1]", "C#1 ~ 1", "C#1 ~ x",
    ]  # fmt: skip
    natural = np.array([3.0, 0.0, -1.0, 0.5, 0.25, 1.0, 4.0, 0.2, 1.0])
    params = lay.unpack(natural, natural=True)
    np.testing.assert_allclose(params.lsig, np.log([[1.0, 4.0], [1.0, 4.0]]), rtol=1e-15)
    np.testing.assert_allclose(params.chol, [[0.5]], rtol=1e-15)
    theta = lay.to_theta(natural)
    np.testing.assert_allclose(theta[4:7], [0.5, 0.0, np.log(4.0)], rtol=1e-15)
    np.testing.assert_allclose(lay.to_natural(theta), natural, rtol=1e-14)
    values = dict(zip(lay.names, natural, strict=True))
    np.testing.assert_allclose(lay.from_named(values).lsig, params.lsig, rtol=1e-15)


# --- bounds ------------------------------------------------------------------------------------


def test_bounds_fig1() -> None:
    bounds = layout(load_spec(FIG1)).bounds(-9.0)
    assert bounds == [(None, None)] * 4 + [(-9.0, None)] * 2 + [(None, None)] * 2


def test_bounds_cholesky_diagonal_only() -> None:
    lay = layout(_spec_cov3())
    bounds = lay.bounds(-20.0)
    assert len(bounds) == lay.n_params == 10
    # theta positions 3..8 are L00, L10, L11, L20, L21, L22
    diagonal = {3, 5, 8}
    for i, bound in enumerate(bounds):
        if i in diagonal:
            assert bound == (0.0, None), i
        elif i == 9:
            assert bound == (-20.0, None)
        else:
            assert bound == (None, None), i
    two = layout(_two_level()).bounds(-5.0)
    assert two[4:] == [(0.0, None), (None, None), (0.0, None), (-5.0, None)]


def test_bounds_diagonal_and_log_linear() -> None:
    diag = layout(_two_level(covariance="diagonal")).bounds(-5.0)
    assert diag == [(None, None)] * 4 + [(0.0, None)] * 2 + [(-5.0, None)]
    loglin = layout(_two_level(residual_covariates="x")).bounds(-5.0)
    assert (
        loglin == [(None, None)] * 4 + [(0.0, None), (None, None), (0.0, None)] + [(None, None)] * 2
    )
    groups = Layout(_two_level(residual_groups="v"), (0, 1)).bounds(-5.0)
    assert groups[-2:] == [(-5.0, None), (-5.0, None)]


# --- from_named --------------------------------------------------------------------------------


def test_from_named_missing_lists_names() -> None:
    spec = load_spec(FIG1)
    values = dict.fromkeys(FIG1_NAMES, 1.0)
    del values["x[c2]"], values["C#1 ~ x"]
    with pytest.raises(KeyError) as info:
        from_named(values, spec)
    assert info.value.args[0] == (
        f"missing parameter value(s) ['x[c2]', 'C#1 ~ x']; the model has {FIG1_NAMES}."
    )


def test_from_named_rejects_unknown_names() -> None:
    spec = load_spec(FIG1)
    values = dict(zip(FIG1_NAMES, [3, 0, -1.1, 0.5, 1.0, 1.0, 0, 1], strict=True))
    values["x[c3]"] = 0.2
    with pytest.raises(KeyError, match=r"unknown parameter name\(s\) \['x\[c3\]'\]"):
        from_named(values, spec)


def test_from_named_two_level() -> None:
    spec = _two_level()
    values = dict(zip(TWO_LEVEL_NAMES, [1.0, 0.5, 2.0, -0.3, 0.6, 0.2, 0.1, 1.5], strict=True))
    params = from_named(values, spec)
    np.testing.assert_array_equal(params.beta, [[1.0, 0.5, 2.0, -0.3]])
    np.testing.assert_allclose(params.chol @ params.chol.T, [[0.6, 0.1], [0.1, 0.2]], rtol=1e-14)
    assert params.chol[0, 1] == 0.0
    assert params.chol[0, 0] > 0 and params.chol[1, 1] > 0
    np.testing.assert_allclose(params.sigma2, [1.5], rtol=1e-15)
    assert params.gamma.shape == (0, 1)
    same = layout(spec).from_named(values)
    np.testing.assert_array_equal(same.chol, params.chol)


# --- relabelling -------------------------------------------------------------------------------


def test_relabel_keeps_probabilities_and_component_means(spec3: Spec) -> None:
    rng = np.random.default_rng(12345)
    n = 40
    params = _params3(rng)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    Z = np.column_stack([np.ones(n), X[:, 1], rng.normal(size=n)])
    old_prob = _softmax_probs(Z, params.gamma)
    old_mean = X @ params.beta.T
    for perm in ([2, 0, 1], [1, 2, 0], [0, 2, 1], [2, 1, 0], [0, 1, 2]):
        new = relabel(params, np.array(perm))
        assert new.gamma.shape == (2, 3)
        new_prob = _softmax_probs(Z, new.gamma)
        np.testing.assert_allclose(new_prob, old_prob[:, perm], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(X @ new.beta.T, old_mean[:, perm], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(new.lsig, params.lsig[perm])
        np.testing.assert_array_equal(new.sigma2, params.sigma2[perm])
        # The mixture as a whole is unchanged: same class-probability-weighted mean.
        np.testing.assert_allclose(
            (new_prob * (X @ new.beta.T)).sum(axis=1),
            (old_prob * old_mean).sum(axis=1),
            rtol=1e-12,
            atol=1e-14,
        )


def test_relabel_new_reference_class_gets_zero_logits() -> None:
    chol = np.array([[0.9, 0.0], [0.1, 0.4]])
    params = Params(
        beta=np.array([[0.0], [1.0], [2.0]]),
        lsig=np.log(np.array([[1.0], [2.0], [3.0]])),
        gamma=np.array([[1.0, 0.5], [-2.0, 0.25]]),
        chol=chol,
    )
    new = relabel(params, np.array([2, 1, 0]))
    # old class 0 becomes the reference; logits are re-expressed against it.
    np.testing.assert_allclose(new.gamma, [[-1.0, -0.5], [-3.0, -0.25]], rtol=1e-15)
    np.testing.assert_array_equal(new.beta[:, 0], [2.0, 1.0, 0.0])
    np.testing.assert_allclose(new.sigma2, [3.0, 2.0, 1.0], rtol=1e-15)
    # school residuals are not class-specific: the covariance is untouched
    np.testing.assert_array_equal(new.chol, chol)


def test_relabel_keeps_shared_log_linear_variance() -> None:
    lsig = np.array([[0.1, -0.4], [0.1, -0.4]])
    params = Params(
        beta=np.array([[1.0, 2.0], [3.0, 4.0]]), lsig=lsig,
        gamma=np.array([[0.7]]), chol=np.array([[0.5]]),
    )  # fmt: skip
    new = relabel(params, np.array([1, 0]))
    np.testing.assert_array_equal(new.beta, [[3.0, 4.0], [1.0, 2.0]])
    np.testing.assert_array_equal(new.lsig, lsig)
    np.testing.assert_allclose(new.gamma, [[-0.7]], rtol=1e-15)
    np.testing.assert_array_equal(new.chol, [[0.5]])


def test_relabel_twice_with_inverse_is_identity(spec3: Spec) -> None:
    params = _params3(np.random.default_rng(99))
    perm = np.array([1, 2, 0])
    back = relabel(relabel(params, perm), np.argsort(perm))
    np.testing.assert_allclose(back.beta, params.beta, rtol=1e-14)
    np.testing.assert_allclose(back.lsig, params.lsig, rtol=1e-14)
    np.testing.assert_allclose(back.sigma2, params.sigma2, rtol=1e-14)
    np.testing.assert_allclose(back.gamma, params.gamma, rtol=1e-14, atol=1e-15)


def _flat(beta: np.ndarray, k: int = 3, m: int = 3) -> Params:
    return Params(
        beta=beta, lsig=np.zeros((k, 1)), gamma=np.zeros((k - 1, m)), chol=np.zeros((0, 0))
    )


def test_order_permutation_sorts_by_descending_intercept(spec3: Spec) -> None:
    params = _flat(np.array([[0.5, 9.0, 1.0], [3.0, -9.0, 1.0], [-1.0, 0.0, 1.0]]))
    perm = order_permutation(params, spec3)
    assert perm.tolist() == [1, 0, 2]
    ordered = relabel(params, perm)
    assert ordered.beta[:, 0].tolist() == [3.0, 0.5, -1.0]
    assert order_permutation(ordered, spec3).tolist() == [0, 1, 2]


def test_order_permutation_by_slope() -> None:
    spec = make_spec("y ~ x", classes=3, class_varying=["x"])
    params = _flat(np.array([[0.0, -1.0], [0.0, 2.0], [0.0, 0.5]]), m=1)
    assert order_permutation(params, spec).tolist() == [1, 2, 0]


def test_order_permutation_uses_fixed_effect_columns() -> None:
    # fixed effects are 1, w, x, x:w: the slope x is column 2 of beta, not 1
    spec = _two_level(classes=3, class_varying=["x"], order_classes_by="x")
    beta = np.array([[0.0, 5.0, -1.0, 7.0], [0.0, 5.0, 2.0, 7.0], [0.0, 5.0, 0.5, 7.0]])
    params = _flat(beta, m=1)
    assert order_permutation(params, spec).tolist() == [1, 2, 0]


def test_order_permutation_ties_are_stable(spec3: Spec) -> None:
    params = _flat(np.array([[1.0, 0, 0], [2.0, 0, 0], [1.0, 0, 0]]))
    assert order_permutation(params, spec3).tolist() == [1, 0, 2]


def test_order_permutation_single_class() -> None:
    params = _flat(np.array([[1.0, 2.0]]), k=1, m=1)
    assert order_permutation(params, make_spec("y ~ x")).tolist() == [0]
