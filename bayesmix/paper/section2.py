"""The paper's Section 2: population values of its simulations and its Monte Carlo studies."""

from __future__ import annotations

from typing import Any

from bayesmix.errors import EstimationError
from bayesmix.model.build import load_spec
from bayesmix.model.catalogue import model_file

FIG1_PARAMS: dict[str, float] = {
    "1[c1]": 3.0,
    "1[c2]": 0.0,
    "x[c1]": -1.1,
    "x[c2]": 0.5,
    "sigma2[c1]": 1.0,
    "sigma2[c2]": 1.0,
    "C#1 ~ 1": 0.0,
    "C#1 ~ x": 1.0,
}
"""Population values of Section 2.1 (class 1 = high class, x = female)."""


FIG3_PARAMS: dict[str, float] = {
    "1[c1]": 3.0,
    "1[c2]": 0.0,
    "w": 0.5,
    "x[c1]": -1.1,
    "x[c2]": 0.5,
    "var(u_1)": 0.5,
    "var(u_C#1)": 0.5,
    "sigma2": 1.0,
    "C#1 ~ 1": 0.0,
    "C#1 ~ x": 1.0,
    "C#1 ~ w": 1.0,
}
"""Population values of the Fig 3 model (Section 2.2; level 1 as in Section 2.1)."""

CONVENTIONAL_PARAMS: dict[str, float] = {
    "1": 0.0,
    "w": 0.5,
    "x": 1.0,
    "x:w": 1.0,
    "var(u_1)": 0.5,
    "var(u_x)": 0.5,
    "cov(u_1,u_x)": 0.0,
    "sigma2": 1.0,
}
"""Population values of the conventional model of Section 2.2's last study."""


def section2_study(study: str, replications: int = 100) -> dict[str, Any]:
    """The paper's Section 2.2 studies as ``montecarlo`` arguments.

    Parameters
    ----------
    study : {"recovery", "conventional-on-mixture", "mixture-on-conventional"}
    replications : int

    Returns
    -------
    dict
        ``generate``, ``fit``, ``replications``, ``clusters`` (200) and
        ``cluster_size`` (15).
    """
    fig3 = load_spec(model_file("fig3"))
    conventional = load_spec(model_file("conventional"))
    studies = {
        "recovery": ((fig3, FIG3_PARAMS), [fig3]),
        "conventional-on-mixture": ((fig3, FIG3_PARAMS), [conventional, fig3]),
        "mixture-on-conventional": ((conventional, CONVENTIONAL_PARAMS), [conventional, fig3]),
    }
    if study not in studies:
        raise EstimationError(f"study must be one of {list(studies)}, got {study!r}.")
    generate, fit = studies[study]
    return {
        "generate": generate,
        "fit": fit,
        "replications": replications,
        "clusters": 200,
        "cluster_size": 15,
    }
