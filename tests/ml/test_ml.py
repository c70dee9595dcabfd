"""Maximum likelihood: exactness of the likelihood, recovery, global maximum, diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.density.compiled import loglik_and_grad
from bayesmix.errors import ReplicationWarning
from bayesmix.model import params as param_layout
from bayesmix.model.params import param_names
from bayesmix.paper.section2 import FIG1_PARAMS


def _reference_loglik(y, x, values: dict[str, float]) -> float:
    """Eqs 1-2 written out independently with scipy."""
    eta = values["C#1 ~ 1"] + values["C#1 ~ x"] * x
    logw = np.column_stack([eta, np.zeros_like(eta)])
    logw -= special.logsumexp(logw, axis=1, keepdims=True)
    comp = np.column_stack(
        [
            stats.norm.logpdf(
                y, values[f"1[c{c}]"] + values[f"x[c{c}]"] * x, np.sqrt(values[f"sigma2[c{c}]"])
            )
            for c in (1, 2)
        ]
    )
    return float(special.logsumexp(logw + comp, axis=1).sum())


def test_loglik_matches_independent_formula(fig1_spec, fig1_10k):
    values = {**FIG1_PARAMS, "sigma2[c2]": 1.7, "C#1 ~ 1": -0.3}
    design = build_design(fig1_spec, fig1_10k)
    lay = design.layout
    theta = lay.to_theta(np.array([values[n] for n in lay.names]))
    f = loglik_and_grad(lay)
    args = design.likelihood_args()
    ll, grad = f(theta, *args)
    expected = _reference_loglik(fig1_10k["y"].to_numpy(), fig1_10k["x"].to_numpy(), values)
    assert float(ll) == pytest.approx(expected, abs=1e-8)
    # the analytic gradient agrees with central differences
    h = 1e-6
    for i in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        numeric = (f(up, *args)[0] - f(down, *args)[0]) / (2 * h)
        assert grad[i] == pytest.approx(float(numeric), rel=1e-5, abs=1e-4)


def test_fig1_recovery_within_3_se(fig1_10k_ml):
    table = fig1_10k_ml.params
    assert list(table.index) == param_names(fig1_10k_ml.spec)
    for name, truth in FIG1_PARAMS.items():
        est, se = table.loc[name, "estimate"], table.loc[name, "se"]
        assert 0 < se < 0.1, name
        assert abs(est - truth) < 3 * se, f"{name}: {est:.4f} vs {truth} (SE {se:.4f})"
    assert fig1_10k_ml.converged
    assert fig1_10k_ml.max_abs_gradient < 1e-3
    assert fig1_10k_ml.n_params == 8
    assert fig1_10k_ml.starts.replicated >= 10
    assert fig1_10k_ml.diagnostics == ()


def test_fit_statistics(fig1_10k_ml):
    n, r, ll = 10000, 8, fig1_10k_ml.loglik
    assert fig1_10k_ml.bic == pytest.approx(-2 * ll + r * np.log(n))
    assert fig1_10k_ml.aic == pytest.approx(-2 * ll + 2 * r)
    assert fig1_10k_ml.sabic == pytest.approx(-2 * ll + r * np.log((n + 2) / 24))
    post = fig1_10k_ml.class_probabilities
    assert post.shape == (n, 2)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    assert 0.6 < fig1_10k_ml.entropy < 0.9
    # class 1 is the high-intercept class, as in the paper
    assert fig1_10k_ml.params.loc["1[c1]", "estimate"] > fig1_10k_ml.params.loc["1[c2]", "estimate"]


def test_global_maximum_reached_from_other_seeds(fig1_spec, fig1_10k, fig1_10k_ml):
    other = bm.fit_ml(fig1_spec, fig1_10k, starts=20, random_seed=987654)
    assert other.loglik == pytest.approx(fig1_10k_ml.loglik, abs=1e-6)
    np.testing.assert_allclose(other.estimates, fig1_10k_ml.estimates, atol=1e-5)


def test_same_seed_reproduces_exactly(fig1_spec, fig1_10k, fig1_10k_ml):
    again = bm.fit_ml(fig1_spec, fig1_10k, starts=20, random_seed=1)
    np.testing.assert_array_equal(again.starts.logliks, fig1_10k_ml.starts.logliks)
    np.testing.assert_array_equal(again.estimates, fig1_10k_ml.estimates)


def test_standard_errors_match_numerical_hessian_of_natural_parameters(
    fig1_spec, fig1_10k, fig1_10k_ml
):
    """SEs on the natural scale equal the inverse Hessian in natural parameters."""
    y = fig1_10k["y"].to_numpy()
    X = np.column_stack([np.ones(len(y)), fig1_10k["x"]])
    values = dict(zip(fig1_10k_ml.names, fig1_10k_ml.estimates, strict=True))

    def loglik(vec: np.ndarray) -> float:
        return _reference_loglik(y, X[:, 1], dict(zip(fig1_10k_ml.names, vec, strict=True)))

    base = np.array(list(values.values()))
    p = base.size
    hess = np.empty((p, p))
    h = 1e-4
    for i in range(p):
        for j in range(p):
            e_i, e_j = np.eye(p)[i] * h, np.eye(p)[j] * h
            hess[i, j] = (
                loglik(base + e_i + e_j)
                - loglik(base + e_i - e_j)
                - loglik(base - e_i + e_j)
                + loglik(base - e_i - e_j)
            ) / (4 * h * h)
    se = np.sqrt(np.diag(np.linalg.inv(-hess)))
    np.testing.assert_allclose(fig1_10k_ml.se, se, rtol=2e-3)


def test_one_class_model_is_ordinary_least_squares(fig1_10k):
    spec = bm.make_spec("y ~ x", classes=1)
    fit = bm.fit_ml(spec, fig1_10k)
    X = np.column_stack([np.ones(len(fig1_10k)), fig1_10k["x"]])
    y = fig1_10k["y"].to_numpy()
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    sigma2 = np.mean((y - X @ coef) ** 2)
    np.testing.assert_allclose(fit.estimates[:2], coef, atol=1e-7)
    assert fit.estimates[2] == pytest.approx(sigma2, rel=1e-7)
    assert fit.loglik == pytest.approx(
        stats.norm.logpdf(y, X @ coef, np.sqrt(sigma2)).sum(), abs=1e-6
    )
    # OLS standard errors with the ML variance estimate
    cov = sigma2 * np.linalg.inv(X.T @ X)
    np.testing.assert_allclose(fit.se[:2], np.sqrt(np.diag(cov)), rtol=1e-4)
    assert fit.starts.n_starts == 1
    assert np.isnan(fit.entropy)


def test_relabelled_estimates_give_same_loglik(fig1_spec, fig1_10k_ml, fig1_10k):
    design = build_design(fig1_spec, fig1_10k)
    lay = design.layout
    params = lay.unpack(fig1_10k_ml.estimates, natural=True)
    swapped = param_layout.relabel(params, np.array([1, 0]))
    f = loglik_and_grad(lay)
    a = f(lay.pack(params, natural=False), *design.likelihood_args())[0]
    b = f(lay.pack(swapped, natural=False), *design.likelihood_args())[0]
    assert float(a) == pytest.approx(float(b), abs=1e-8)
    assert float(a) == pytest.approx(fig1_10k_ml.loglik, abs=1e-8)


def test_single_start_warns_about_replication(fig1_spec, fig1_10k):
    with pytest.warns(ReplicationWarning, match="only 1 of 1 starts"):
        fit = bm.fit_ml(fig1_spec, fig1_10k.iloc[:2000], starts=1, random_seed=3)
    (note,) = fit.diagnostics
    assert (note.code, note.category) == ("not_replicated", ReplicationWarning)
    assert "only 1 of 1" in note.message
    assert "Diagnostics:" in fit.summary() and "only 1 of 1" in fit.summary()


def test_bad_starts_argument(fig1_spec, fig1_10k):
    with pytest.raises(bm.EstimationError, match="starts must be a positive integer"):
        bm.fit_ml(fig1_spec, fig1_10k, starts=0)


def test_single_level_fit_is_the_same_with_either_backend(fig1_spec, fig1_10k, fig1_10k_ml):
    # the default for a model without random effects is JAX; numba must agree with it
    numba = bm.fit_ml(fig1_spec, fig1_10k, starts=20, random_seed=1, backend="numba")
    assert numba.loglik == pytest.approx(fig1_10k_ml.loglik, abs=1e-6)
    assert numba.estimates == pytest.approx(fig1_10k_ml.estimates, abs=1e-5)
    assert numba.se == pytest.approx(fig1_10k_ml.se, rel=1e-4)
    assert np.abs(numba.class_probabilities - fig1_10k_ml.class_probabilities).max() < 1e-6


def test_polish_damps_a_newton_step_that_fails_on_fresh_information():
    # log cosh: the full Newton step sinh(2t)/2 overshoots for |t| > 1.09, so from t = 1.3
    # (to -2.04, lower logL) it fails on the exact curvature; damped steps reach the optimum
    from bayesmix.ml.optimise import _polish, _Run

    n = 1000

    def fun(theta):
        value = np.sum(np.log(np.cosh(theta)))
        return value / n, np.tanh(theta) / n

    start = np.array([1.3, -1.2])
    run, info = _polish(fun, _Run(start, -fun(start)[0] * n, True, 0, ""), n, [(None, None)] * 2)
    assert np.max(np.abs(np.tanh(run.theta))) < 1e-5
    assert run.loglik == pytest.approx(0.0, abs=1e-10)
    # the information returned is that of the solution: diag(sech^2(0)) = I
    np.testing.assert_allclose(info, np.eye(2), atol=1e-6)


def test_forward_difference_information_is_close_to_the_exact_hessian():
    from bayesmix.ml.inference import observed_information

    n = 500
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]])

    def fun(theta):
        # negative mean log-likelihood: a quadratic plus log cosh, Hessian A + diag(sech^2)
        value = 0.5 * theta @ A @ theta + np.sum(np.log(np.cosh(theta)))
        return value / n, (A @ theta + np.tanh(theta)) / n

    theta = np.array([0.3, -1.2, 2.0])
    exact = A + np.diag(1.0 / np.cosh(theta) ** 2)
    forward = observed_information(fun, theta, n, central=False)
    central = observed_information(fun, theta, n)
    np.testing.assert_allclose(forward, exact, atol=1e-5)
    np.testing.assert_allclose(central, exact, atol=1e-8)
    assert not np.allclose(forward, central, atol=1e-12, rtol=0)
