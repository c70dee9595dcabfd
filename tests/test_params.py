"""Tests of bayesmix.params: names, counts, packing and relabelling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bayesmix.params import (
    Params,
    count_params,
    from_named,
    order_permutation,
    pack,
    param_names,
    relabel,
    unpack,
    variance_mask,
)
from bayesmix.spec import Spec, load_spec, make_spec

FIG1 = Path(__file__).resolve().parent.parent / "models" / "fig1.toml"
FIG1_NAMES = [
    "1[c1]", "1[c2]", "x[c1]", "x[c2]", "sigma2[c1]", "sigma2[c2]", "C#1 ~ 1", "C#1 ~ x",
]  # fmt: skip


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


def _softmax_probs(Z: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    logits = np.column_stack([Z @ gamma.T, np.zeros(Z.shape[0])])
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    return prob / prob.sum(axis=1, keepdims=True)


# --- names and counts --------------------------------------------------------------------------


def test_fig1_param_names_exactly() -> None:
    spec = load_spec(FIG1)
    assert param_names(spec) == FIG1_NAMES
    assert count_params(spec) == 8


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
    ],
)  # fmt: skip
def test_param_names(spec: Spec, names: list[str]) -> None:
    assert param_names(spec) == names
    assert count_params(spec) == len(names)


def test_count_params_three_classes(spec3: Spec) -> None:
    # intercept and x: 2 x 3, z: 1, sigma2: 3, membership: 2 x 3
    assert count_params(spec3) == 16
    assert count_params(load_spec(FIG1, classes=3)) == 13  # 6 + 3 + 2 x 2
    assert count_params(load_spec(FIG1, classes=1)) == 3


def test_variance_mask_fig1() -> None:
    mask = variance_mask(load_spec(FIG1))
    assert mask.tolist() == [False, False, False, False, True, True, False, False]


# --- pack / unpack -----------------------------------------------------------------------------


def test_unpack_fig1_structure() -> None:
    spec = load_spec(FIG1)
    theta = np.array([3.0, 0.0, -1.1, 0.5, 1.0, 2.0, 0.25, 1.5])
    params = unpack(theta, spec, log_variances=False)
    np.testing.assert_array_equal(params.beta, [[3.0, -1.1], [0.0, 0.5]])
    np.testing.assert_array_equal(params.sigma2, [1.0, 2.0])
    np.testing.assert_array_equal(params.gamma, [[0.25, 1.5]])
    logged = unpack(theta, spec)
    np.testing.assert_allclose(logged.sigma2, np.exp([1.0, 2.0]), rtol=1e-15)


def test_unpack_shared_terms_and_common_variance() -> None:
    spec = make_spec("y ~ x + z", classes=3, class_varying=["x"], membership="z")
    theta = np.arange(1.0, 11.0)  # 1, x[c1..c3], z, sigma2, C#1 ~ 1, C#1 ~ z, C#2 ~ 1, C#2 ~ z
    params = unpack(theta, spec, log_variances=False)
    np.testing.assert_array_equal(params.beta, [[1, 2, 5], [1, 3, 5], [1, 4, 5]])
    np.testing.assert_array_equal(params.sigma2, [6, 6, 6])
    np.testing.assert_array_equal(params.gamma, [[7, 8], [9, 10]])


def test_unpack_single_class() -> None:
    params = unpack(np.array([1.0, 2.0, np.log(4.0)]), make_spec("y ~ x"))
    np.testing.assert_array_equal(params.beta, [[1.0, 2.0]])
    np.testing.assert_allclose(params.sigma2, [4.0], rtol=1e-15)
    assert params.gamma.shape == (0, 1)


@pytest.mark.parametrize("log_variances", [True, False])
def test_pack_unpack_round_trip(spec3: Spec, log_variances: bool) -> None:
    rng = np.random.default_rng(7)
    theta = rng.normal(size=count_params(spec3))
    if not log_variances:
        theta[variance_mask(spec3)] = rng.uniform(0.5, 2.0, size=3)
    params = unpack(theta, spec3, log_variances=log_variances)
    np.testing.assert_allclose(pack(params, spec3, log_variances=log_variances), theta, rtol=1e-14)


@pytest.mark.parametrize("log_variances", [True, False])
def test_unpack_pack_round_trip_from_params(spec3: Spec, log_variances: bool) -> None:
    rng = np.random.default_rng(8)
    beta = rng.normal(size=(3, 3))
    beta[:, 2] = beta[0, 2]  # z is shared
    params = Params(beta=beta, sigma2=rng.uniform(0.5, 2.0, size=3), gamma=rng.normal(size=(2, 3)))
    theta = pack(params, spec3, log_variances=log_variances)
    back = unpack(theta, spec3, log_variances=log_variances)
    np.testing.assert_allclose(back.beta, params.beta, rtol=1e-14)
    np.testing.assert_allclose(back.sigma2, params.sigma2, rtol=1e-14)
    np.testing.assert_allclose(back.gamma, params.gamma, rtol=1e-14)


def test_log_and_natural_packing_differ_only_in_variances() -> None:
    spec = load_spec(FIG1)
    params = from_named(dict(zip(FIG1_NAMES, [3, 0, -1.1, 0.5, 2.0, 0.5, 0, 1], strict=True)), spec)
    natural = pack(params, spec)
    logged = pack(params, spec, log_variances=True)
    np.testing.assert_array_equal(natural, [3, 0, -1.1, 0.5, 2.0, 0.5, 0, 1])
    np.testing.assert_allclose(logged[4:6], np.log([2.0, 0.5]), rtol=1e-15)
    np.testing.assert_array_equal(logged[[0, 1, 2, 3, 6, 7]], natural[[0, 1, 2, 3, 6, 7]])


def test_from_named_missing_lists_names() -> None:
    spec = load_spec(FIG1)
    values = dict.fromkeys(FIG1_NAMES, 1.0)
    del values["x[c2]"], values["C#1 ~ x"]
    with pytest.raises(KeyError) as info:
        from_named(values, spec)
    assert info.value.args[0] == (
        f"missing parameter value(s) ['x[c2]', 'C#1 ~ x']; the model has {FIG1_NAMES}."
    )


# --- relabelling -------------------------------------------------------------------------------


def test_relabel_keeps_probabilities_and_component_means(spec3: Spec) -> None:
    rng = np.random.default_rng(12345)
    n = 40
    beta = rng.normal(size=(3, 3))
    beta[:, 2] = beta[0, 2]
    params = Params(beta=beta, sigma2=rng.uniform(0.5, 2.0, size=3), gamma=rng.normal(size=(2, 3)))
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
        np.testing.assert_array_equal(new.sigma2, params.sigma2[perm])
        # The mixture as a whole is unchanged: same class-probability-weighted mean.
        np.testing.assert_allclose(
            (new_prob * (X @ new.beta.T)).sum(axis=1),
            (old_prob * old_mean).sum(axis=1),
            rtol=1e-12,
            atol=1e-14,
        )


def test_relabel_new_reference_class_gets_zero_logits() -> None:
    params = Params(
        beta=np.array([[0.0], [1.0], [2.0]]),
        sigma2=np.array([1.0, 2.0, 3.0]),
        gamma=np.array([[1.0, 0.5], [-2.0, 0.25]]),
    )
    new = relabel(params, np.array([2, 1, 0]))
    # old class 0 becomes the reference; logits are re-expressed against it.
    np.testing.assert_allclose(new.gamma, [[-1.0, -0.5], [-3.0, -0.25]], rtol=1e-15)
    np.testing.assert_array_equal(new.beta[:, 0], [2.0, 1.0, 0.0])
    np.testing.assert_array_equal(new.sigma2, [3.0, 2.0, 1.0])


def test_relabel_twice_with_inverse_is_identity(spec3: Spec) -> None:
    rng = np.random.default_rng(99)
    params = Params(
        beta=rng.normal(size=(3, 3)), sigma2=rng.uniform(0.5, 2, 3), gamma=rng.normal(size=(2, 3))
    )
    perm = np.array([1, 2, 0])
    back = relabel(relabel(params, perm), np.argsort(perm))
    np.testing.assert_allclose(back.beta, params.beta, rtol=1e-14)
    np.testing.assert_allclose(back.sigma2, params.sigma2, rtol=1e-14)
    np.testing.assert_allclose(back.gamma, params.gamma, rtol=1e-14, atol=1e-15)


def test_order_permutation_sorts_by_descending_intercept(spec3: Spec) -> None:
    beta = np.array([[0.5, 9.0, 1.0], [3.0, -9.0, 1.0], [-1.0, 0.0, 1.0]])
    params = Params(beta=beta, sigma2=np.ones(3), gamma=np.zeros((2, 3)))
    perm = order_permutation(params, spec3)
    assert perm.tolist() == [1, 0, 2]
    ordered = relabel(params, perm)
    assert ordered.beta[:, 0].tolist() == [3.0, 0.5, -1.0]
    assert order_permutation(ordered, spec3).tolist() == [0, 1, 2]


def test_order_permutation_by_slope() -> None:
    spec = make_spec("y ~ x", classes=3, class_varying=["x"])
    beta = np.array([[0.0, -1.0], [0.0, 2.0], [0.0, 0.5]])
    params = Params(beta=beta, sigma2=np.ones(3), gamma=np.zeros((2, 1)))
    assert order_permutation(params, spec).tolist() == [1, 2, 0]


def test_order_permutation_ties_are_stable(spec3: Spec) -> None:
    beta = np.array([[1.0, 0, 0], [2.0, 0, 0], [1.0, 0, 0]])
    params = Params(beta=beta, sigma2=np.ones(3), gamma=np.zeros((2, 3)))
    assert order_permutation(params, spec3).tolist() == [1, 0, 2]


def test_order_permutation_single_class() -> None:
    params = Params(beta=np.array([[1.0, 2.0]]), sigma2=np.ones(1), gamma=np.zeros((0, 1)))
    assert order_permutation(params, make_spec("y ~ x")).tolist() == [0]


def test_from_named_rejects_unknown_names() -> None:
    spec = load_spec(FIG1)
    values = dict(zip(FIG1_NAMES, [3, 0, -1.1, 0.5, 1.0, 1.0, 0, 1], strict=True))
    values["x[c3]"] = 0.2
    with pytest.raises(KeyError, match=r"unknown parameter name\(s\) \['x\[c3\]'\]"):
        from_named(values, spec)
