"""Transforms of the PyMC model's constrained coefficients."""

from __future__ import annotations

from typing import Any

import pytensor.tensor as pt
from pymc.logprob.transforms import Transform


class CornerOrdered(Transform):
    """Descending order along row 0 and/or column 0 of a (L, K) coefficient array.

    Row 0 ordered labels the level-1 classes within level-2 class 1, column 0
    ordered labels the level-2 classes by level-1 class 1: the labelling of
    the ML estimates. The other entries are unconstrained.
    """

    name = "corner_ordered"
    ndim_supp = 2

    def __init__(self, row: bool, col: bool) -> None:
        self.row = row
        self.col = col

    def backward(self, value: Any, *inputs: Any) -> Any:
        x = value
        if self.row:
            steps = pt.concatenate([pt.zeros(1), pt.cumsum(pt.exp(value[0, 1:]))])
            x = pt.set_subtensor(x[0, :], value[0, 0] - steps)
        if self.col:
            steps = pt.concatenate([pt.zeros(1), pt.cumsum(pt.exp(value[1:, 0]))])
            x = pt.set_subtensor(x[:, 0], value[0, 0] - steps)
        return x

    def forward(self, value: Any, *inputs: Any) -> Any:
        x = value
        if self.row:
            x = pt.set_subtensor(x[0, 1:], pt.log(value[0, :-1] - value[0, 1:]))
        if self.col:
            x = pt.set_subtensor(x[1:, 0], pt.log(value[:-1, 0] - value[1:, 0]))
        return x

    def log_jac_det(self, value: Any, *inputs: Any) -> Any:
        out = pt.zeros(())
        if self.row:
            out = out + pt.sum(value[0, 1:])
        if self.col:
            out = out + pt.sum(value[1:, 0])
        return out
