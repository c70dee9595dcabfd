"""Checks of arguments shared by several entry points (the Python API and the CLI)."""

from __future__ import annotations

import numbers

from bayesmix.errors import BayesmixError, EstimationError

#: Largest accepted random seed. NumPy's generators take any non-negative integer, but
#: its legacy ``RandomState`` and the samplers' seeds are 32-bit, and a seed stored in a
#: result file should mean the same wherever it is read back.
SEED_MAX = 2**32 - 1

#: The NUTS implementations of ``fit_bayes(sampler=...)`` and ``bayesmix fit --sampler``,
#: the default first: nutpie, and ``pm.sample``'s other ``nuts_sampler`` choices.
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")


def seed_problem(value: object) -> str | None:
    """Why ``value`` is not a random seed, or None when it is one (None included)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return f"must be a whole number from 0 to {SEED_MAX}, got {value!r}"
    if not 0 <= int(value) <= SEED_MAX:
        return f"must be a whole number from 0 to {SEED_MAX}, got {int(value)}"
    return None


def check_seed(
    value: object, name: str = "random_seed", *, error: type[BayesmixError] = EstimationError
) -> int | None:
    """Check a random seed and return it as a Python int (None passes through).

    Parameters
    ----------
    value : object
        The seed as given: None, or an integer (Python or NumPy) from 0 to
        ``2**32 - 1``.
    name : str
        The argument's name, for the message (``"random_seed"``, ``"--seed"``).
    error : type of BayesmixError
        The error raised: :class:`EstimationError` for a fit's seed,
        :class:`DataError` for a simulation's.

    Returns
    -------
    int or None

    Raises
    ------
    BayesmixError
        Of class ``error``, for a negative, fractional, boolean, text or too
        large seed; the message names the argument and the value.
    """
    problem = seed_problem(value)
    if problem is not None:
        raise error(f"{name} {problem}; pass an integer such as 12345, or None for a fresh seed.")
    return None if value is None else int(value)  # type: ignore[call-overload]


def check_count(value: object, name: str, *, error: type[BayesmixError] = EstimationError) -> int:
    """Check a count option (draws, chains, starts...) and return it as a Python int.

    Python and NumPy integers of at least 1 pass; booleans, floats, strings and
    values below 1 are refused with ``error``, naming the option.

    Parameters
    ----------
    value : object
        The count as given.
    name : str
        The option's name, for the message.
    error : type of BayesmixError
        The exception raised for a bad value.

    Returns
    -------
    int
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise error(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
