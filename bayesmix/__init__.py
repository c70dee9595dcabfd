"""bayesmix: multilevel regression mixture analysis by NUTS and by maximum likelihood.

The models of Muthen & Asparouhov (2009), "Multilevel regression mixture
analysis", JRSS A 172(3), fitted from one specification both as Bayesian
models in PyMC and by maximum likelihood.
"""

from bayesmix._version import __version__
from bayesmix.analysis.compare import LRTResult, WaldResult, compare, format_table, lrt, wald
from bayesmix.analysis.loo import ELPD, elpd
from bayesmix.analysis.montecarlo import (
    MonteCarloResult,
    SimulationDesign,
    compare_estimators,
    montecarlo,
)
from bayesmix.analysis.predictive import PredictiveDraws, posterior_predictive
from bayesmix.analysis.sbc import sbc
from bayesmix.analysis.sbc_result import SBCResult
from bayesmix.analysis.schools import school_effects, share_positive
from bayesmix.analysis.selection import ClassSelection, between_start, select_classes
from bayesmix.bayes.fit import fit_bayes
from bayesmix.bayes.public import build_model, prior_predictive
from bayesmix.data import datasets
from bayesmix.data.simulate import simulate
from bayesmix.errors import (
    BayesmixError,
    BayesmixWarning,
    DataError,
    EstimationError,
    FormulaError,
    ResultFileWarning,
    SpecError,
)
from bayesmix.ml.fit import fit_ml
from bayesmix.model.build import load_spec, make_spec
from bayesmix.model.catalogue import model_file, model_names
from bayesmix.model.priors import Prior
from bayesmix.model.spec import Spec
from bayesmix.outputs import OutputError
from bayesmix.results.bayes import BayesResult
from bayesmix.results.interface import FitResult
from bayesmix.results.io import load_result, save_result
from bayesmix.results.ml import MLResult
from bayesmix.results.persist import ResultFileError

__all__ = [
    "ELPD",
    "BayesResult",
    "BayesmixError",
    "BayesmixWarning",
    "ClassSelection",
    "DataError",
    "EstimationError",
    "FitResult",
    "FormulaError",
    "LRTResult",
    "MLResult",
    "MonteCarloResult",
    "OutputError",
    "PredictiveDraws",
    "Prior",
    "ResultFileError",
    "ResultFileWarning",
    "SBCResult",
    "SimulationDesign",
    "Spec",
    "SpecError",
    "WaldResult",
    "__version__",
    "between_start",
    "build_model",
    "compare",
    "compare_estimators",
    "datasets",
    "elpd",
    "fit_bayes",
    "fit_ml",
    "format_table",
    "load_result",
    "load_spec",
    "lrt",
    "make_spec",
    "model_file",
    "model_names",
    "montecarlo",
    "posterior_predictive",
    "prior_predictive",
    "save_result",
    "sbc",
    "school_effects",
    "select_classes",
    "share_positive",
    "simulate",
    "wald",
]
