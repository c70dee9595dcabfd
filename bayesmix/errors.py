"""Error and warning types raised by bayesmix.

Every problem bayesmix detects in user input is raised as a subclass of
:class:`BayesmixError`; every diagnostic it reports is issued as a subclass
of :class:`BayesmixWarning`, so that users can filter them with the standard
:mod:`warnings` machinery.
"""

from __future__ import annotations


class BayesmixError(Exception):
    """Base class of all errors raised by bayesmix for bad input or failed fits."""


class SpecError(BayesmixError, ValueError):
    """A model specification is malformed or inconsistent."""


class FormulaError(SpecError):
    """A formula string cannot be parsed."""


class DataError(BayesmixError, ValueError):
    """The data do not fit the specification (missing columns, bad values...)."""


class EstimationError(BayesmixError, RuntimeError):
    """An estimator failed in a way no result can be returned for."""


class BayesmixWarning(UserWarning):
    """Base class of all warnings issued by bayesmix."""


class MissingDataWarning(BayesmixWarning):
    """Rows were removed because of missing values (listwise deletion)."""


class ConvergenceWarning(BayesmixWarning):
    """An optimiser or sampler did not converge."""


class ReplicationWarning(BayesmixWarning):
    """The best log-likelihood was reached by only one random start."""


class BoundaryWarning(BayesmixWarning):
    """An estimate lies on the boundary of the parameter space."""


class IdentificationWarning(BayesmixWarning):
    """The information matrix is singular: some parameters are not identified."""


class EmptyClassWarning(IdentificationWarning):
    """A latent class holds (almost) no observations: fewer classes fit the data."""


class SpecWarning(BayesmixWarning):
    """A model setting has no effect in the model as asked, and is dropped."""


class DataWarning(BayesmixWarning):
    """The data as read may not be what the user meant (e.g. a duplicated CSV header)."""


class DesignWarning(BayesmixWarning):
    """The data can support the model only weakly (few clusters, single-student clusters)."""


class SamplingWarning(BayesmixWarning):
    """MCMC diagnostics (R-hat, ESS, divergences) indicate an unreliable posterior."""


class LabelSwitchingWarning(BayesmixWarning):
    """Chains disagree on which latent class is which."""


class ResultFileWarning(BayesmixWarning):
    """A saved result was loaded without verifying its checksum, or carries none."""


def type_name(value: object) -> str:
    """The name of a value's type, as messages about a wrong argument show it.

    Parameters
    ----------
    value : object

    Returns
    -------
    str
        E.g. ``"int"``, ``"DataFrame"``.
    """
    return type(value).__qualname__
