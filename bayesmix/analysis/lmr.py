"""The Vuong-Lo-Mendell-Rubin test of K - 1 against K classes and its adjusted form.

What Mplus prints as TECH11 (Lo, Mendell & Rubin 2001, after Vuong 1989):

* **VLMR.** For the K-class model f (parameters theta, p of them) and the
  (K - 1)-class model g (beta, q of them), Vuong's (1989, Theorem 3.3)
  distribution of ``LR = 2 (log L_f - log L_g)`` when the two models give the
  same density is the weighted sum of independent chi-squares
  ``sum_j lambda_j Z_j^2``, where the lambda_j are the eigenvalues of ::

      W = [ -B_f A_f^-1    -B_fg A_g^-1 ]
          [  B_gf A_f^-1    B_g  A_g^-1 ]

  with ``A_f = E[d2 log f / d theta d theta']``, ``B_f = E[s_f s_f']`` for the
  scores ``s_f = d log f / d theta``, ``B_fg = E[s_f s_g']``, and likewise for g.
  Lo, Mendell and Rubin (2001) use it for mixtures with one class fewer,
  estimating every matrix at the two fits' estimates from the sample: the
  observed information for ``-A`` and the summed outer products of the
  independent units' scores for B (the n in both cancels in ``W``). The
  p-value is ``P(sum lambda_j Z_j^2 >= LR)``, computed by Imhof's (1961)
  inversion of the characteristic function. ``mean = sum lambda_j`` and
  ``sd = sqrt(2 sum lambda_j^2)`` of that distribution are the "Mean" and
  "Standard Deviation" of Mplus's output.
* **Adjusted LMR.** Lo, Mendell and Rubin's (2001, eq 15) ad hoc correction,
  from their simulations of normal mixtures:
  ``LR_adj = LR / (1 + 1 / (d ln n))`` with ``d`` the difference in the number
  of parameters (their ``(3k - 1) - (3k_0 - 1)`` for univariate normal
  mixtures; the models' own counts here), referred to the same weighted
  chi-square distribution.

Units are those a fit's robust standard errors sum over
(:mod:`bayesmix.ml.scores`): schools in two-level models, clusters of a
single-level model that names a cluster column, else observations; ``n`` of
the adjustment is the number of those units.

Differences from Mplus: Mplus's H0 model is the (K - 1)-class solution it
reaches from the K-class estimates with the first class deleted; here it is
the (K - 1)-class fit given, the best of its own random starts. The two agree
when Mplus's start reaches that best solution; otherwise Mplus's H0
log-likelihood is lower and its LR larger. Nylund, Asparouhov and Muthén (2007)
found the VLMR/LMR test to reject too often for some mixtures, and the
bootstrap LRT (:func:`bayesmix.blrt`) to hold its size better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate

from bayesmix.analysis.nested import check_class_pair
from bayesmix.errors import EstimationError
from bayesmix.ml.scores import UnitScores, unit_scores
from bayesmix.model.constraints import describe
from bayesmix.results.ml import MLResult

_EIGEN_TOL = 1e-8
"""Eigenvalues smaller than this fraction of the largest in size are zero weights."""


def vuong_weights(larger: UnitScores, smaller: UnitScores) -> np.ndarray:
    """The eigenvalues of Vuong's W for two fits' scores and information.

    Parameters
    ----------
    larger, smaller : UnitScores
        Scores of the same units and observed information of the fits of the
        larger model f and the smaller model g.

    Returns
    -------
    ndarray
        The ``p + q`` eigenvalues, largest first (real: ``W = B M`` with ``B``
        the scores' cross-product, positive semi-definite, and ``M`` symmetric,
        so ``W`` has the eigenvalues of the symmetric ``B^1/2 M B^1/2``).
    """
    if larger.units != smaller.units:
        raise EstimationError(
            f"the fits have scores of {larger.units} and {smaller.units} units; they must be "
            "fits to the same data."
        )
    s = np.hstack([larger.scores, smaller.scores])
    b = s.T @ s
    # -A_f^-1 = I_f^-1 and A_g^-1 = -I_g^-1, with I the observed information
    p = larger.scores.shape[1]
    m = np.zeros_like(b)
    m[:p, :p] = np.linalg.pinv(larger.information, hermitian=True)
    m[p:, p:] = -np.linalg.pinv(smaller.information, hermitian=True)
    vals, vecs = np.linalg.eigh(b)
    root = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    return np.linalg.eigvalsh(root @ m @ root)[::-1]


def weighted_chi2_sf(x: float, weights: np.ndarray) -> float:
    """``P(sum_j w_j Z_j^2 >= x)`` for independent standard normal Z_j (Imhof 1961).

    Parameters
    ----------
    x : float
    weights : ndarray
        The w_j, of either sign; those that are zero to rounding are dropped.

    Returns
    -------
    float
        The tail probability, clipped to [0, 1] (accurate to about 1e-9
        absolute: QUADPACK on Imhof's integral).
    """
    w = np.asarray(weights, dtype=float)
    w = w[np.abs(w) > _EIGEN_TOL * max(float(np.max(np.abs(w), initial=0.0)), 1.0)]
    if w.size == 0:
        return 1.0 if x <= 0 else 0.0

    def half_angle(u: float) -> float:
        return 0.5 * float(np.sum(np.arctan(w * u)))

    def decay(u: float) -> float:
        # 1 / (u rho(u)), rho(u) = prod (1 + w^2 u^2)^(1/4)
        return float(np.exp(-0.25 * np.sum(np.log1p((w * u) ** 2)))) / u

    # Imhof: P = 1/2 + (1/pi) int_0^inf sin(half_angle(u) - x u / 2) decay(u) du. Near 0 the
    # integrand is finite and is integrated as it is; beyond `cut` sin(a - b) is split into
    # sin(a) cos(b) - cos(a) sin(b), whose slowly varying factors QUADPACK's Fourier
    # integrator (QAWF) takes, where x far in the tail makes the integrand oscillate fast.
    cut = 1.0
    limit = 200 + int(abs(x))
    head, _ = integrate.quad(
        lambda u: np.sin(half_angle(u) - 0.5 * x * u) * decay(u), 0.0, cut, limit=limit
    )
    omega = 0.5 * abs(x)
    if omega == 0.0:
        tail, _ = integrate.quad(lambda u: np.sin(half_angle(u)) * decay(u), cut, np.inf)
    else:
        cos_part, _ = integrate.quad(
            lambda u: np.sin(half_angle(u)) * decay(u), cut, np.inf, weight="cos", wvar=omega
        )
        sin_part, _ = integrate.quad(
            lambda u: np.cos(half_angle(u)) * decay(u), cut, np.inf, weight="sin", wvar=omega
        )
        tail = cos_part - np.sign(x) * sin_part
    value = head + tail
    return float(np.clip(0.5 + value / np.pi, 0.0, 1.0))


@dataclass(frozen=True)
class LMRResult:
    """The Vuong-Lo-Mendell-Rubin test of K - 1 against K classes (Mplus TECH11).

    Attributes
    ----------
    smaller, larger : str
        Model names.
    smaller_classes : int
        K - 1 (the larger has one class more).
    smaller_loglik : float
        H0's log-likelihood (the smaller fit's).
    statistic : float
        ``2 (log L_K - log L_{K-1})``.
    df : int
        Difference in the number of parameters.
    units : int
        Independent units (schools, clusters or observations) of the scores.
    weights : ndarray
        Eigenvalues of Vuong's W: the weights of the chi-squares.
    mean, sd : float
        Mean and standard deviation of the weighted chi-square reference.
    p_value : float
        VLMR p-value, ``P(sum lambda_j Z_j^2 >= statistic)``.
    adjusted_statistic : float
        ``statistic / (1 + 1 / (df ln units))``.
    adjusted_p_value : float
        The same tail probability at the adjusted statistic (Mplus's
        "Lo-Mendell-Rubin adjusted LRT test").
    """

    smaller: str
    larger: str
    smaller_classes: int
    smaller_loglik: float
    statistic: float
    df: int
    units: int
    weights: np.ndarray
    mean: float
    sd: float
    p_value: float
    adjusted_statistic: float
    adjusted_p_value: float

    def summary(self) -> str:
        """The test as Mplus's TECH11 lays it out."""
        k = self.smaller_classes
        return "\n".join(
            [
                f"Vuong-Lo-Mendell-Rubin LRT for {k} (H0, {self.smaller}) versus {k + 1} "
                f"classes ({self.larger}), {self.units} units",
                f"  H0 log-likelihood                  {self.smaller_loglik:14.3f}",
                f"  2 times the log-likelihood diff.   {self.statistic:14.3f}",
                f"  difference in parameters           {self.df:14d}",
                f"  mean                               {self.mean:14.3f}",
                f"  standard deviation                 {self.sd:14.3f}",
                f"  p-value                            {self.p_value:14.4f}",
                "Lo-Mendell-Rubin adjusted LRT",
                f"  value                              {self.adjusted_statistic:14.3f}",
                f"  p-value                            {self.adjusted_p_value:14.4f}",
            ]
        )

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "test": "lmr",
            "smaller": self.smaller,
            "larger": self.larger,
            "smaller_classes": self.smaller_classes,
            "smaller_loglik": self.smaller_loglik,
            "statistic": self.statistic,
            "df": self.df,
            "units": self.units,
            "weights": [float(v) for v in self.weights],
            "mean": self.mean,
            "sd": self.sd,
            "p_value": self.p_value,
            "adjusted_statistic": self.adjusted_statistic,
            "adjusted_p_value": self.adjusted_p_value,
        }


def lmr(smaller: MLResult, larger: MLResult, *, backend: str | None = None) -> LMRResult:
    """The Vuong-Lo-Mendell-Rubin test and the adjusted LMR test of K - 1 against K classes.

    Parameters
    ----------
    smaller, larger : MLResult
        ML fits of one model with K - 1 and K classes to the same data
        (``larger.spec.with_classes(K - 1)`` for the smaller).
    backend : {"numpy", "jax", "numba"}, optional
        Evaluator of the likelihoods for the scores and information.

    Returns
    -------
    LMRResult

    Notes
    -----
    The formulas, their sources (Vuong 1989, Theorem 3.3; Lo, Mendell & Rubin
    2001, eq 15; Imhof 1961) and how this differs from Mplus's TECH11 are in
    :mod:`bayesmix.analysis.lmr`.
    """
    for label, fit in (("smaller", smaller), ("larger", larger)):
        if describe(fit.spec.constraints):
            raise EstimationError(
                f"the LMR test takes the scores of every parameter, and {label} "
                f"({fit.spec.name!r}) has constraints ({describe(fit.spec.constraints)}); "
                "use bayesmix.blrt, which refits the constrained models, or compare by BIC."
            )
    check_class_pair(smaller, larger, "the LMR test", adjacent=True)
    scores = unit_scores(larger, backend)
    weights = vuong_weights(scores, unit_scores(smaller, backend))
    units = scores.units
    statistic = 2.0 * (larger.loglik - smaller.loglik)
    df = larger.n_params - smaller.n_params
    adjusted = statistic / (1.0 + 1.0 / (df * np.log(units)))
    return LMRResult(
        smaller=smaller.spec.name,
        larger=larger.spec.name,
        smaller_classes=smaller.spec.classes,
        smaller_loglik=float(smaller.loglik),
        statistic=float(statistic),
        df=int(df),
        units=units,
        weights=weights,
        mean=float(np.sum(weights)),
        sd=float(np.sqrt(2.0 * np.sum(weights**2))),
        p_value=weighted_chi2_sf(statistic, weights),
        adjusted_statistic=float(adjusted),
        adjusted_p_value=weighted_chi2_sf(adjusted, weights),
    )
