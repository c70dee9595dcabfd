"""The Fig 1 plot shows the right subsets."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.demo import FIG1_PARAMS
from bayesmix.plots import plot_fig1


@pytest.fixture(scope="module")
def gender_data():
    spec = bm.load_spec("models/fig1.toml")
    return bm.simulate(spec, FIG1_PARAMS, n=4000, covariates={"x": "bernoulli"}, random_seed=5)


def test_fig1_panels_count_every_student_once(gender_data, tmp_path):
    fig = plot_fig1(gender_data)
    axes = fig.get_axes()
    assert len(axes) == 5
    titles = [ax.get_title() for ax in axes]
    assert titles[0].startswith("(a) low class, females")
    assert titles[3].startswith("(d) high class, males")
    assert titles[4] == "(e) observed distributions, classes ignored"
    counts = [int(t.split("n=")[1].rstrip(")")) for t in titles[:4]]
    assert sum(counts) == len(gender_data)
    expected_a = int(((gender_data["x"] == 1) & (gender_data["C"] == 2)).sum())
    assert counts[0] == expected_a
    # histogram bar heights of panel (a) add up to its count
    heights = sum(p.get_height() for p in axes[0].patches)
    assert heights == expected_a
    legend = [t.get_text() for t in axes[4].get_legend().get_texts()]
    male_mean = gender_data.loc[gender_data["x"] == 0, "y"].mean()
    assert legend[0] == f"males (mean {male_mean:.2f})"
    fig.savefig(tmp_path / "fig1.png")
    assert (tmp_path / "fig1.png").stat().st_size > 10_000


def test_fig1_accepts_modal_classes_of_a_fit(gender_data):
    modal = np.where(gender_data["y"] > 1.5, 1, 2)
    fig = plot_fig1(gender_data, classes=modal)
    n_a = int(((gender_data["x"] == 1) & (modal == 2)).sum())
    assert fig.get_axes()[0].get_title().endswith(f"(n={n_a})")


def test_school_effects_plot_reports_share():
    import pandas as pd

    from bayesmix.plots import plot_school_effects

    eff = pd.DataFrame(
        {
            "coef_1": [10.0, 12.0, 14.0, 9.0],
            "coef_female": [0.5, -1.0, -2.0, 0.2],
            "sd_coef_1": [1.0] * 4,
            "sd_coef_female": [0.5] * 4,
        }
    )
    fig = plot_school_effects(eff, errorbars=True)
    ax = fig.get_axes()[0]
    assert ax.get_title() == "4 schools; female coefficient > 0 in 50.0%"
    assert ax.get_xlabel() == "school coefficient of intercept"
    offsets = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(offsets[:, 1], [0.5, -1.0, -2.0, 0.2])
