"""The coordinates NUTS samples leave the model's posterior density unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import bayesmix as bm
from bayesmix.bayes.centring import posterior_variance_ratio, school_means_plan
from bayesmix.bayes.draws import _pointwise_draws, structured_draws
from bayesmix.bayes.model import sampling_model
from bayesmix.data.design import build_design
from bayesmix.ml.starts import random_start
from bayesmix.model.params import order_permutation, relabel
from bayesmix.model.priors import resolve_priors
from bayesmix.paper.section2 import FIG3_PARAMS
from tests.support.paths import MODELS


def _design_and_start(name: str):
    """A design and a start (the role of the ML estimates) with given school variances."""
    if name == "fig3":
        spec = bm.load_spec(MODELS / "fig3.toml")
        data = bm.simulate(spec, FIG3_PARAMS, clusters=40, cluster_size=8, random_seed=3)
        design = build_design(spec, data)
        return design, design.layout.from_named(FIG3_PARAMS)
    spec = bm.load_spec(MODELS / "hsb_B.toml", classes=3)
    hsb = bm.datasets.load_hsb()
    design = build_design(spec, hsb[hsb["school"].isin(hsb["school"].unique()[:30])])
    start = design.layout.unpack(random_start(design, np.random.default_rng(0)))
    start = relabel(start, order_permutation(start, spec))
    named = dict(zip(design.layout.names, design.layout.pack(start), strict=True))
    # sigma2 1 (HSB's is 9) makes the school intercepts well informed
    named |= {"var(u_1)": 0.44, "var(u_female)": 0.01, "var(u_f)": 0.36, "sigma2": 1.0}
    named |= {k: 0.0 for k in named if k.startswith("cov(")}
    if name == "hsb_B_collinear":
        # corr(u_1, u_female) -0.99, as at the NELS B3 ML estimates: the female slope is
        # sampled after the membership factor (see bayesmix.bayes.residuals.residual_order)
        named["cov(u_1,u_female)"] = -0.99 * np.sqrt(0.44 * 0.01)
    return design, design.layout.from_named(named)


def test_only_well_informed_school_coefficients_are_centred():
    # Fig 3: 8 students, sigma2 1, var(u_1) 0.5: the intercepts are centred, the
    # membership residuals not. HSB B at sigma2 1: the intercept is centred, the female
    # slope (variance 0.01) and the membership factor are not.
    design, start = _design_and_start("fig3")
    ratio = posterior_variance_ratio(design, start)
    assert ratio[0] < 0.5 < ratio[1]
    assert school_means_plan(design, start).terms == (0,)
    assert school_means_plan(design, None) is None
    design, start = _design_and_start("hsb_B")
    ratio = posterior_variance_ratio(design, start)
    assert ratio[0] < 0.5 < ratio[1]
    plan = school_means_plan(design, start)
    assert plan.terms == (0,)
    assert [design.spec.fixed_names[j] for _, j, _ in plan.level2] == [
        "pracad",
        "catholic",
        "meanses",
    ]


def _model_values(model, point: dict, names: list[str]) -> xr.Dataset:
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(
        outs, inputs=model.value_vars, mode="FAST_COMPILE", on_unused_input="ignore"
    )
    values = fn(point)
    return xr.Dataset(
        {
            n: (
                ("chain", "draw", *[f"{n}_{i}" for i in range(np.ndim(v))]),
                np.asarray(v)[None, None],
            )
            for n, v in zip(names, values, strict=True)
        }
    )


@pytest.mark.usefixtures("python_linker")
@pytest.mark.parametrize("name", ["fig3", "hsb_B", "hsb_B_collinear"])
def test_sampled_coordinates_give_the_model_density(name):
    # Reference: priors on beta, gamma and lambda, u_j ~ N(0, Sigma),
    # and the likelihood given u, all in the model's own parameters. NUTS's coordinates
    # (b_school centred on its mean, class offsets and log gaps, centred membership
    # intercepts, z_member) differ from them by shifts and shears only, plus the log gaps'
    # Jacobian and that of u_member -> z_member, J log|L_mm|.
    design, start = _design_and_start(name)
    spec = design.spec
    plan = school_means_plan(design, start)
    priors = resolve_priors(design, None)
    model = sampling_model(design, priors, start)
    rng = np.random.default_rng(11)
    point = {
        k: np.asarray(v) + 0.3 * rng.standard_normal(np.shape(v))
        for k, v in model.initial_point().items()
    }
    fixed = [f"b_{n}" for n in spec.fixed_names]
    scale = "chol_u" if spec.covariance == "unstructured" else "sd_u"
    extra = ["lambda"] if "lambda" in model.named_vars else []
    post = _model_values(model, point, [*fixed, "sigma", "gamma", scale, "u", *extra])
    for n in post.data_vars:
        dims = post[n].dims
        if n.startswith("b_") and len(dims) == 3:
            post[n] = post[n].rename({dims[2]: "class"})
    draws = structured_draws(post, design)
    u = post["u"].values[0, 0]
    loglik = _pointwise_draws(draws, design, u[None, None]).loglik.sum()

    lay = design.layout
    ref = 0.0
    for j, n in enumerate(spec.fixed_names):
        entries = lay.fixed_entries(n)
        values = draws.beta[0, 0, : len(entries), j]
        ref += sum(
            stats.norm.logpdf(v, priors[e].mu, priors[e].sigma)
            for v, e in zip(values, entries, strict=True)
        )
    gamma = draws.gamma[0, 0]
    for c in range(spec.classes - 1):
        for t, term in enumerate(spec.membership):
            p = priors[f"C#{c + 1} ~ {term}"]
            ref += stats.norm.logpdf(gamma[c, t], p.mu, p.sigma)
    if extra:
        lam = post["lambda"].values.ravel()
        for c, v in enumerate(lam):
            p = priors[f"lambda(C#{c + 2})"]
            ref += stats.norm.logpdf(v, p.mu, p.sigma)
    # the residual SD and correlation priors are the same variables in both coordinates
    ordered = "sd_u_ordered" in model.named_vars
    assert ordered == (name == "hsb_B_collinear")
    sampled = ["sd_u"] if spec.covariance != "unstructured" else ["sd_u", "chol_corr_u"]
    sampled = [f"{n}_ordered" for n in sampled] if ordered else sampled
    prior_vars = [model["sigma"], *(model[n] for n in sampled)]
    ref += float(model.compile_logp(vars=prior_vars, jacobian=False)(point))
    chol = draws.chol[0, 0]
    cov = chol @ chol.T
    ref += stats.multivariate_normal(np.zeros(len(cov)), cov).logpdf(u).sum()
    ref += loglik
    r = len(plan.terms)
    n_schools = len(design.cluster_ids)
    ref += n_schools * np.log(np.diag(chol)[r:]).sum()
    ref += point["b_1_log_gap"].sum()

    got = float(model.compile_logp(jacobian=False)(point))
    assert got == pytest.approx(ref, abs=1e-6 * abs(ref))
