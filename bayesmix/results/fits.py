"""The result classes under the module name they had before :mod:`bayesmix.results` was split.

:class:`MLResult` lives in :mod:`bayesmix.results.ml`, :class:`BayesResult`
in :mod:`bayesmix.results.bayes`, their shared interface in
:mod:`bayesmix.results.interface` and the tables both report in
:mod:`bayesmix.results.tables`; code written against this module keeps
working.
"""

from bayesmix.results.bayes import BayesResult, LabelCheck
from bayesmix.results.interface import FitResult
from bayesmix.results.ml import MLResult, StartsReport
from bayesmix.results.tables import information_criteria, relative_entropy

__all__ = [
    "BayesResult",
    "FitResult",
    "LabelCheck",
    "MLResult",
    "StartsReport",
    "information_criteria",
    "relative_entropy",
]
