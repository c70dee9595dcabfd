"""bayesmix: multilevel regression mixture analysis by NUTS and by maximum likelihood.

The models of Muthen & Asparouhov (2009), "Multilevel regression mixture
analysis", JRSS A 172(3), fitted from one specification both as Bayesian
models in PyMC and by maximum likelihood.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bayesmix._version import __version__
from bayesmix.errors import (
    BayesmixError,
    BayesmixWarning,
    DataError,
    EstimationError,
    FormulaError,
    ResultFileWarning,
    SpecError,
)

# Every other public name is imported on first use, so that `import bayesmix`, the CLI's
# --help and an ML fit do not load PyMC, JAX or numba before an estimator needs them.
_LAZY: dict[str, str] = {
    "BLRTResult": "bayesmix.analysis.blrt_result",
    "blrt": "bayesmix.analysis.blrt",
    "LRTResult": "bayesmix.analysis.compare",
    "WaldResult": "bayesmix.analysis.compare",
    "compare": "bayesmix.analysis.compare",
    "format_table": "bayesmix.analysis.compare",
    "lrt": "bayesmix.analysis.compare",
    "wald": "bayesmix.analysis.compare",
    "ELPD": "bayesmix.analysis.loo",
    "elpd": "bayesmix.analysis.loo",
    "LMRResult": "bayesmix.analysis.lmr",
    "lmr": "bayesmix.analysis.lmr",
    "MonteCarloResult": "bayesmix.analysis.montecarlo",
    "SimulationDesign": "bayesmix.analysis.montecarlo",
    "compare_estimators": "bayesmix.analysis.montecarlo",
    "montecarlo": "bayesmix.analysis.montecarlo",
    "PredictiveDraws": "bayesmix.analysis.predictive",
    "posterior_predictive": "bayesmix.analysis.predictive",
    "sbc": "bayesmix.analysis.sbc",
    "SBCResult": "bayesmix.analysis.sbc_result",
    "school_effects": "bayesmix.analysis.schools",
    "share_positive": "bayesmix.analysis.schools",
    "ClassSelection": "bayesmix.analysis.selection",
    "between_start": "bayesmix.ml.starts",
    "select_classes": "bayesmix.analysis.selection",
    "fit_bayes": "bayesmix.bayes.fit",
    "build_model": "bayesmix.bayes.public",
    "prior_predictive": "bayesmix.bayes.public",
    "datasets": "bayesmix.data",
    "simulate": "bayesmix.data.simulate",
    "fit_ml": "bayesmix.ml.fit",
    "load_spec": "bayesmix.model.build",
    "make_spec": "bayesmix.model.build",
    "model_file": "bayesmix.model.catalogue",
    "model_names": "bayesmix.model.catalogue",
    "Prior": "bayesmix.model.priors",
    "Spec": "bayesmix.model.spec",
    "Weights": "bayesmix.model.weights",
    "Constraints": "bayesmix.model.constraints",
    "OutputError": "bayesmix.outputs",
    "BayesResult": "bayesmix.results.bayes",
    "FitResult": "bayesmix.results.interface",
    "load_result": "bayesmix.results.io",
    "save_result": "bayesmix.results.io",
    "MLResult": "bayesmix.results.ml",
    "ResultFileError": "bayesmix.results.persist",
}

if TYPE_CHECKING:
    from bayesmix.analysis.blrt import blrt
    from bayesmix.analysis.blrt_result import BLRTResult
    from bayesmix.analysis.compare import LRTResult, WaldResult, compare, format_table, lrt, wald
    from bayesmix.analysis.lmr import LMRResult, lmr
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
    from bayesmix.analysis.selection import ClassSelection, select_classes
    from bayesmix.bayes.fit import fit_bayes
    from bayesmix.bayes.public import build_model, prior_predictive
    from bayesmix.data import datasets
    from bayesmix.data.simulate import simulate
    from bayesmix.ml.fit import fit_ml
    from bayesmix.ml.starts import between_start
    from bayesmix.model.build import load_spec, make_spec
    from bayesmix.model.catalogue import model_file, model_names
    from bayesmix.model.constraints import Constraints
    from bayesmix.model.priors import Prior
    from bayesmix.model.spec import Spec
    from bayesmix.model.weights import Weights
    from bayesmix.outputs import OutputError
    from bayesmix.results.bayes import BayesResult
    from bayesmix.results.interface import FitResult
    from bayesmix.results.io import load_result, save_result
    from bayesmix.results.ml import MLResult
    from bayesmix.results.persist import ResultFileError


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bayesmix' has no attribute {name!r}")
    parent = importlib.import_module(module)
    # a submodule (datasets) is an attribute of its package only once imported
    value = (
        getattr(parent, name)
        if hasattr(parent, name)
        else importlib.import_module(f"{module}.{name}")
    )
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ELPD",
    "BLRTResult",
    "BayesResult",
    "BayesmixError",
    "BayesmixWarning",
    "ClassSelection",
    "Constraints",
    "DataError",
    "EstimationError",
    "FitResult",
    "FormulaError",
    "LMRResult",
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
    "Weights",
    "__version__",
    "between_start",
    "blrt",
    "build_model",
    "compare",
    "compare_estimators",
    "datasets",
    "elpd",
    "fit_bayes",
    "fit_ml",
    "format_table",
    "lmr",
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
