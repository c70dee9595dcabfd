"""Model specifications and population values shared by several test files."""

from __future__ import annotations

import bayesmix as bm

C22_PARAMS = {
    "1[c1,d1]": 4.0, "1[c2,d1]": 1.0, "1[c1,d2]": 1.5, "1[c2,d2]": -1.5, "w": 0.5,
    "x[c1]": -1.0, "x[c2]": 0.5, "var(u_1)": 0.3, "sigma2": 1.0,
    "C#1 ~ 1": 0.0, "C#1 ~ x": 1.0, "D#1 ~ 1": 0.3, "D#1 ~ w": 1.0,
}  # fmt: skip
"""Model C with K = 2 student classes in L = 2 school classes: the population values."""


def c22_spec(between: int = 2) -> bm.Spec:
    """Model C (K = 2) with ``between`` school classes; ``between=1`` is its model B."""
    return bm.make_spec(
        "y ~ x",
        classes=2,
        class_varying=["1", "x"],
        membership="x",
        cluster="cluster",
        level2={"1": "w"},
        random="1",
        between_classes=between,
        between_membership="w",
        between_varying=["1"],
        name="c22",
    )
