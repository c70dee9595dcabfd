"""Fitted results: :class:`MLResult` and :class:`BayesResult`.

Both carry the spec, the design they were fitted to, a tidy parameter table
(``params``), fit statistics and diagnostics, a ``summary()`` for people and
a ``to_dict()`` for the JSON contract of the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.data.design import Design
from bayesmix.formatting import format_table
from bayesmix.model.params import Params, between_label, class_label
from bayesmix.model.spec import Spec
from bayesmix.results.rowless import ClassSummary


def information_criteria(loglik: float, n_params: int, n_obs: int) -> dict[str, float]:
    """AIC, BIC (paper eq 33) and sample-size adjusted BIC (n* = (n + 2) / 24)."""
    return {
        "aic": -2 * loglik + 2 * n_params,
        "bic": -2 * loglik + n_params * math.log(n_obs),
        "sabic": -2 * loglik + n_params * math.log((n_obs + 2) / 24),
    }


def relative_entropy(post: np.ndarray) -> float:
    """Mplus relative entropy of posterior class probabilities (1 = perfect separation).

    ``1 - sum_ic(-p_ic log p_ic) / (n log K)``; NaN for one class.
    """
    if isinstance(post, ClassSummary):
        return post.entropy
    n, K = post.shape
    if K < 2:
        return float("nan")
    p = np.clip(post, 1e-300, 1.0)
    return float(1.0 - np.sum(-p * np.log(p)) / (n * math.log(K)))


def _json_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _clusters_text(design: Design) -> str:
    return "" if design.n_clusters is None else f"   clusters {design.n_clusters}"


def _class_table(post: np.ndarray, label: Callable[[int], str] = class_label) -> pd.DataFrame:
    """Proportions and modal counts of posterior class probabilities (level 1 or 2)."""
    K = post.shape[1]
    if isinstance(post, ClassSummary):
        return pd.DataFrame(
            {"proportion": post.mean(axis=0), "modal_count": post.modal_counts},
            index=[label(c) for c in range(K)],
        )
    modal = np.bincount(post.argmax(axis=1), minlength=K)
    return pd.DataFrame(
        {"proportion": post.mean(axis=0), "modal_count": modal},
        index=[label(c) for c in range(K)],
    )


@dataclass(frozen=True, eq=False)
class StartsReport:
    """How the random starts of an ML fit ended.

    Attributes
    ----------
    n_starts : int
        Starts run.
    logliks : ndarray
        Final log-likelihood of each start.
    replicated : int
        Final-stage starts that reached the best log-likelihood (within 1e-3).
    converged : int
        Final-stage starts whose optimiser reported convergence.
    seed : int or None
        Seed of the starts.
    n_final : int or None
        Starts carried to the final stage (two-level mixtures, Mplus-style
        ``STARTS = n n/4``); None when every start ran to convergence.
    """

    n_starts: int
    logliks: np.ndarray
    replicated: int
    converged: int
    seed: int | None
    n_final: int | None = None


@dataclass(frozen=True, eq=False)
class MLResult:
    """A maximum-likelihood fit.

    Attributes
    ----------
    spec, design
        Model and data.
    names : tuple of str
        Parameter names (see :func:`bayesmix.model.params.param_names`).
    estimates, se, z, p : ndarray
        Estimates, standard errors from the observed information, Wald z and
        two-sided p-values, on the natural scale (variances, not logs).
    cov : ndarray
        Covariance matrix of the estimates.
    loglik : float
        Maximised log-likelihood.
    class_probabilities : ndarray, shape (n, K)
        Posterior class probabilities of each observation at the estimates.
    starts : StartsReport
    converged : bool
        Whether the best solution has a vanishing gradient.
    max_abs_gradient : float
    boundary : tuple of str
        Variances at the lower boundary.
    singular_information : bool
    diagnostics : tuple of str
        Problems found, also issued as warnings.
    elapsed_s : float
    timings : dict
        Seconds spent compiling the likelihood (``compile_s``), optimising
        from all starts (``optimise_s``) and polishing plus standard errors
        (``se_s``).
    quadrature_points : int or None
        Gauss-Hermite points per dimension (two-level mixtures only).
    between_probabilities : ndarray, shape (J, L), or None
        Posterior level-2 class probabilities of each school (model C).
    """

    spec: Spec
    design: Design = field(repr=False)
    names: tuple[str, ...]
    estimates: np.ndarray
    se: np.ndarray
    z: np.ndarray
    p: np.ndarray
    cov: np.ndarray = field(repr=False)
    loglik: float
    class_probabilities: np.ndarray = field(repr=False)
    starts: StartsReport
    converged: bool
    max_abs_gradient: float
    boundary: tuple[str, ...]
    singular_information: bool
    diagnostics: tuple[str, ...]
    elapsed_s: float
    timings: dict[str, float] = field(default_factory=dict)
    quadrature_points: int | None = None
    between_probabilities: np.ndarray | None = field(default=None, repr=False)
    estimator: str = "ml"

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return self.design.n_obs

    @property
    def n_params(self) -> int:
        """Number of free parameters."""
        return len(self.names)

    @property
    def aic(self) -> float:
        """Akaike information criterion."""
        return information_criteria(self.loglik, self.n_params, self.n_obs)["aic"]

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``-2 logL + r log n`` (eq 33)."""
        return information_criteria(self.loglik, self.n_params, self.n_obs)["bic"]

    @property
    def sabic(self) -> float:
        """Sample-size adjusted BIC."""
        return information_criteria(self.loglik, self.n_params, self.n_obs)["sabic"]

    @property
    def entropy(self) -> float:
        """Relative entropy of the class assignment (NaN for one class)."""
        return relative_entropy(self.class_probabilities)

    @property
    def params(self) -> pd.DataFrame:
        """Table of estimate, se, z and p, indexed by parameter name."""
        return pd.DataFrame(
            {"estimate": self.estimates, "se": self.se, "z": self.z, "p": self.p},
            index=pd.Index(self.names, name="parameter"),
        )

    @property
    def classes(self) -> pd.DataFrame:
        """Estimated class proportions and modal class counts."""
        return _class_table(self.class_probabilities)

    @property
    def structured(self) -> Params:
        """The estimates as structured :class:`~bayesmix.model.params.Params`."""
        return self.design.layout.unpack(self.estimates, natural=True)

    def summary(self) -> str:
        """A printable report: fit statistics, estimates, classes, diagnostics."""
        s = self.spec
        lines = [
            f"bayesmix ML fit: {s.name}  ({s.classes} class{'es' if s.classes > 1 else ''})",
            f"  observations {self.n_obs}{_clusters_text(self.design)}   parameters "
            f"{self.n_params}   time {self.elapsed_s:.2f}s",
            f"  log-likelihood {self.loglik:.3f}   AIC {self.aic:.3f}   BIC {self.bic:.3f}   "
            f"aBIC {self.sabic:.3f}",
        ]
        if s.classes > 1:
            st = self.starts
            of = (
                f"{st.n_final} final-stage starts ({st.n_starts} initial)"
                if st.n_final is not None
                else f"{st.n_starts} starts"
            )
            lines.append(
                f"  entropy {self.entropy:.3f}   best logL replicated by {st.replicated} of "
                f"{of} (seed {st.seed})"
            )
        lines.append(
            f"  converged {'yes' if self.converged else 'NO'} (max |gradient| "
            f"{self.max_abs_gradient:.1e})"
        )
        lines.append("")
        lines.append(format_table(self.params))
        if s.classes > 1:
            lines.append("")
            lines.append("Classes (posterior proportions, modal assignment):")
            lines.append(self.classes.to_string(float_format=lambda v: f"{v:.4f}"))
        if self.between_probabilities is not None:
            lines.append("")
            lines.append("Level-2 classes (posterior proportions of schools, modal assignment):")
            lines.append(
                _class_table(self.between_probabilities, between_label).to_string(
                    float_format=lambda v: f"{v:.4f}"
                )
            )
        lines.append("")
        if self.diagnostics:
            lines.append("Diagnostics:")
            lines.extend(f"  ! {d}" for d in self.diagnostics)
        else:
            lines.append("Diagnostics: none")
        return "\n".join(lines)

    def save(self, path: Any, *, overwrite: bool = False, include_data: bool = True) -> Any:
        """Write the fit to a JSON file; see :func:`bayesmix.save_result`."""
        from bayesmix.results.persist import save_result

        return save_result(self, path, overwrite=overwrite, include_data=include_data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the CLI's ``--json`` contract)."""
        return {
            "model": self.spec.name,
            "estimator": "ml",
            "classes": self.spec.classes,
            "n_obs": self.n_obs,
            "n_clusters": self.design.n_clusters,
            "loglik": self.loglik,
            "n_params": self.n_params,
            "bic": self.bic,
            "aic": self.aic,
            "sabic": self.sabic,
            "entropy": _json_float(self.entropy),
            "elapsed_s": self.elapsed_s,
            "converged": self.converged,
            "quadrature_points": self.quadrature_points,
            "starts": self.starts.n_starts,
            "best_loglik_replicated": self.starts.replicated,
            "final_stage_starts": self.starts.n_final,
            "class_proportions": [float(v) for v in self.class_probabilities.mean(axis=0)],
            "between_proportions": None
            if self.between_probabilities is None
            else [float(v) for v in self.between_probabilities.mean(axis=0)],
            "params": [
                {"name": nm, "estimate": float(e), "se": _json_float(se)}
                for nm, e, se in zip(self.names, self.estimates, self.se, strict=True)
            ],
            "diagnostics": list(self.diagnostics),
        }


@dataclass(frozen=True)
class LabelCheck:
    """Agreement of chains on class labels.

    Attributes
    ----------
    switched : bool
        True when some chain's classes match chain 1's only after a
        permutation.
    permutations : tuple of tuple of int
        Per chain, the class of that chain matching each class of chain 1.
    agreement : tuple of float
        Per chain, the share of probability mass on matched classes.
    """

    switched: bool
    permutations: tuple[tuple[int, ...], ...]
    agreement: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class BayesResult:
    """A NUTS fit.

    Attributes
    ----------
    spec, design
        Model and data.
    idata : xarray.DataTree
        ArviZ DataTree with ``posterior``, ``sample_stats``,
        ``log_likelihood`` (``y`` per observation; for two-level models also
        ``y_school``, per school, both conditional on the school residuals;
        ``y_school`` only for model C, whose schools are the independent
        units)
        and ``observed_data``.
    names : tuple of str
        Parameter names, as in :class:`MLResult`.
    table : pandas.DataFrame
        Posterior mean, sd, 2.5% and 97.5% quantiles, r_hat, ess_bulk and
        ess_tail of each parameter.
    draws : dict of str to ndarray
        Draws (chain, draw) of each named parameter.
    class_probabilities : ndarray, shape (n, K)
        Posterior mean of P(C_i = c | y_i) over all draws.
    loglik : float
        Log-likelihood at the posterior means (for BIC/AIC beside ML fits).
    loo : object
        ArviZ ``ELPDDataLOO`` of the pointwise log-likelihood.
    divergences : int
    labels : LabelCheck
    priors : dict
    settings, timings : dict
        Sampler settings (draws, tune, chains, seed, init, sampler) and
        seconds spent (compile_s, sampling_s, elapsed_s).
    between_probabilities : ndarray, shape (J, L), or None
        Posterior mean of P(D_j = d | y_j) over all draws (model C).
    between_labels : LabelCheck or None
        Agreement of chains on the level-2 class labels (model C).
    cache : dict
        Quantities computed on demand (the school-level LOO of :meth:`elpd`).
    """

    spec: Spec
    design: Design = field(repr=False)
    idata: Any = field(repr=False)
    names: tuple[str, ...]
    table: pd.DataFrame
    draws: dict[str, np.ndarray] = field(repr=False)
    class_probabilities: np.ndarray = field(repr=False)
    loglik: float
    loo: Any = field(repr=False)
    divergences: int
    labels: LabelCheck
    priors: dict[str, Any] = field(repr=False)
    settings: dict[str, Any]
    timings: dict[str, float]
    between_probabilities: np.ndarray | None = field(default=None, repr=False)
    between_labels: LabelCheck | None = None
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    estimator: str = "bayes"

    def elpd(self, level: str | None = None, **kwargs: Any) -> Any:
        """PSIS-LOO and WAIC at the student or school level: :func:`bayesmix.analysis.loo.elpd`."""
        from bayesmix.analysis.loo import elpd

        return elpd(self, level, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_draws(
        cls,
        *,
        spec: Spec,
        design: Design,
        idata: Any,
        named: dict[str, np.ndarray],
        chain_post: np.ndarray,
        divergences: int,
        labels: LabelCheck,
        chain_between: np.ndarray | None = None,
        between_labels: LabelCheck | None = None,
        loo: Any,
        priors: dict[str, Any],
        settings: dict[str, Any],
        timings: dict[str, float],
        loglik: float | None = None,
    ) -> BayesResult:
        """Summarise posterior draws into a result.

        ``loglik`` (the log-likelihood at the posterior means) is computed
        from the design unless given, as it is by a loaded result.
        """
        import arviz_stats as azs

        from bayesmix.density.compiled import loglik_and_grad
        from bayesmix.density.likelihood import needs_quadrature

        names = tuple(named)
        stacked = np.stack([named[n] for n in names], axis=-1)
        flat = stacked.reshape(-1, len(names))
        table = pd.DataFrame(
            {
                "mean": flat.mean(axis=0),
                "sd": flat.std(axis=0, ddof=1),
                "q2.5": np.quantile(flat, 0.025, axis=0),
                "q97.5": np.quantile(flat, 0.975, axis=0),
                "r_hat": np.atleast_1d(azs.rhat(stacked)),
                "ess_bulk": np.atleast_1d(azs.ess(stacked)),
                "ess_tail": np.atleast_1d(azs.ess(stacked, method="tail", prob=(0.05, 0.95))),
            },
            index=pd.Index(names, name="parameter"),
        )
        if loglik is None:
            lay = design.layout
            theta = lay.to_theta(table["mean"].to_numpy())
            if needs_quadrature(lay):
                from bayesmix.density.quadrature import adapted_quadrature

                loglik = float(adapted_quadrature(design, theta, iterations=3).evaluate(theta)[0])
            else:
                loglik = float(loglik_and_grad(lay)(theta, *design.likelihood_args())[0])
        return cls(
            spec=spec,
            design=design,
            idata=idata,
            names=names,
            table=table,
            draws=named,
            class_probabilities=chain_post.mean(axis=0),
            loglik=loglik,
            loo=loo,
            divergences=divergences,
            labels=labels,
            priors=priors,
            settings=settings,
            timings=timings,
            between_probabilities=None if chain_between is None else chain_between.mean(axis=0),
            between_labels=between_labels,
        )

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return self.design.n_obs

    @property
    def n_params(self) -> int:
        """Number of free parameters."""
        return len(self.names)

    @property
    def params(self) -> pd.DataFrame:
        """Alias of :attr:`table`: the tidy parameter table."""
        return self.table

    @property
    def aic(self) -> float:
        """AIC at the posterior means."""
        return information_criteria(self.loglik, self.n_params, self.n_obs)["aic"]

    @property
    def bic(self) -> float:
        """BIC at the posterior means."""
        return information_criteria(self.loglik, self.n_params, self.n_obs)["bic"]

    @property
    def rhat_max(self) -> float:
        """Largest rank-normalised split R-hat over the parameters."""
        return float(self.table["r_hat"].max())

    @property
    def ess_bulk_min(self) -> float:
        """Smallest bulk effective sample size over the parameters."""
        return float(self.table["ess_bulk"].min())

    @property
    def ess_per_second(self) -> float:
        """Smallest bulk ESS per second of sampling (compile time excluded)."""
        return self.ess_bulk_min / self.timings["sampling_s"]

    @property
    def entropy(self) -> float:
        """Relative entropy of the posterior class probabilities."""
        return relative_entropy(self.class_probabilities)

    @property
    def classes(self) -> pd.DataFrame:
        """Posterior class proportions and modal class counts."""
        return _class_table(self.class_probabilities)

    @property
    def pareto_k_bad(self) -> int:
        """Observations whose PSIS Pareto k exceeds the reliability threshold."""
        return int((np.asarray(self.loo.pareto_k) > self.loo.good_k).sum())

    @property
    def diagnostics(self) -> tuple[str, ...]:
        """Problems with the posterior sample, also issued as warnings."""
        notes = []
        kept = self.settings.get("interrupted_at")
        if kept is not None:
            notes.append(
                f"sampling was interrupted: the result holds the first {kept} of "
                f"{self.settings['draws']} draws per chain."
            )
        bad_rhat = self.table.index[self.table["r_hat"] > 1.01].tolist()
        if bad_rhat:
            notes.append(
                f"R-hat above 1.01 for {bad_rhat} (max {self.rhat_max:.3f}): chains have "
                "not mixed; run longer or check the model."
            )
        low_ess = self.table.index[self.table["ess_bulk"] < 100 * self.settings["chains"]]
        if len(low_ess):
            notes.append(
                f"bulk ESS below {100 * self.settings['chains']} for {low_ess.tolist()} "
                f"(min {self.ess_bulk_min:.0f}): increase draws."
            )
        if self.divergences:
            notes.append(
                f"{self.divergences} divergent transitions: the posterior may be biased; "
                "reparameterise or tighten priors."
            )
        if self.labels.switched:
            notes.append(
                f"chains disagree on class labels (matching permutations "
                f"{list(self.labels.permutations)}): label switching between chains."
            )
        if self.between_labels is not None and self.between_labels.switched:
            notes.append(
                f"chains disagree on level-2 class labels (matching permutations "
                f"{list(self.between_labels.permutations)}): label switching between chains."
            )
        for probs, level in (
            (self.class_probabilities, "class"),
            (self.between_probabilities, "school class"),
        ):
            if probs is None or probs.shape[1] < 2:
                continue
            n = probs.shape[0]
            for c, count in enumerate(probs.sum(axis=0)):
                if count < max(1.0, 0.005 * n):
                    notes.append(
                        f"{level} {c + 1} holds {count:.2f} of {n} units "
                        f"({100 * count / n:.2f}%) in the posterior: an (almost) empty class, "
                        f"or one holding outliers: fit fewer {level}es or check those units."
                    )
        if self.pareto_k_bad:
            unit = "schools" if self.between_probabilities is not None else "observations"
            notes.append(
                f"{self.pareto_k_bad} {unit} have Pareto k > {self.loo.good_k:.2f}: "
                "PSIS-LOO is unreliable for them."
            )
        return tuple(notes)

    def summary(self) -> str:
        """A printable report: settings, diagnostics, posterior table, classes."""
        s, st = self.spec, self.settings
        kept = st.get("interrupted_at")
        n_draws = st["draws"] if kept is None else f"{kept} of {st['draws']} (interrupted)"
        lines = [
            f"bayesmix Bayes fit: {s.name}  ({s.classes} class{'es' if s.classes > 1 else ''})",
            f"  observations {self.n_obs}   parameters {self.n_params}   "
            f"{st['chains']} chains x {n_draws} draws ({st['tune']} tune), "
            f"{st['sampler']}, init {st['init']}, seed {st['seed']}",
            f"  time {self.timings['elapsed_s']:.1f}s (compile {self.timings['compile_s']:.1f}s, "
            f"sampling {self.timings['sampling_s']:.1f}s)",
            f"  max R-hat {self.rhat_max:.3f}   min bulk ESS {self.ess_bulk_min:.0f}   "
            f"divergences {self.divergences}",
            f"  elpd_loo {self.loo.elpd:.2f} (SE {self.loo.se:.2f}, p_loo {self.loo.p:.2f})   "
            f"logL at posterior mean {self.loglik:.3f}",
            "",
            format_table(self.table),
        ]
        if s.classes > 1:
            lines += [
                "",
                "Classes (posterior proportions, modal assignment):",
                self.classes.to_string(float_format=lambda v: f"{v:.4f}"),
            ]
        if self.between_probabilities is not None:
            lines += [
                "",
                "Level-2 classes (posterior proportions of schools, modal assignment):",
                _class_table(self.between_probabilities, between_label).to_string(
                    float_format=lambda v: f"{v:.4f}"
                ),
            ]
        lines.append("")
        diag = self.diagnostics
        lines += ["Diagnostics:", *(f"  ! {d}" for d in diag)] if diag else ["Diagnostics: none"]
        return "\n".join(lines)

    def save(self, path: Any, *, overwrite: bool = False, include_data: bool = True) -> Any:
        """Write the fit to a folder (JSON and zarr DataTree); see :func:`bayesmix.save_result`."""
        from bayesmix.results.persist import save_result

        return save_result(self, path, overwrite=overwrite, include_data=include_data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the CLI's ``--json`` contract)."""
        return {
            "model": self.spec.name,
            "estimator": "bayes",
            "classes": self.spec.classes,
            "n_obs": self.n_obs,
            "n_clusters": self.design.n_clusters,
            "loglik": self.loglik,
            "n_params": self.n_params,
            "bic": self.bic,
            "aic": self.aic,
            "entropy": _json_float(self.entropy),
            "elapsed_s": self.timings["elapsed_s"],
            "compile_s": self.timings["compile_s"],
            "sampling_s": self.timings["sampling_s"],
            "draws": self.settings["draws"],
            "tune": self.settings["tune"],
            "chains": self.settings["chains"],
            "seed": self.settings["seed"],
            "rhat_max": self.rhat_max,
            "ess_bulk_min": self.ess_bulk_min,
            "divergences": self.divergences,
            "label_switching": self.labels.switched,
            "loo": {
                "elpd": float(self.loo.elpd),
                "se": float(self.loo.se),
                "p_loo": float(self.loo.p),
                "pareto_k_bad": self.pareto_k_bad,
            },
            "class_proportions": [float(v) for v in self.class_probabilities.mean(axis=0)],
            "between_proportions": None
            if self.between_probabilities is None
            else [float(v) for v in self.between_probabilities.mean(axis=0)],
            "params": [
                {
                    "name": nm,
                    "mean": float(row["mean"]),
                    "sd": float(row["sd"]),
                    "r_hat": float(row["r_hat"]),
                    "ess_bulk": float(row["ess_bulk"]),
                }
                for nm, row in self.table.iterrows()
            ],
            "diagnostics": list(self.diagnostics),
        }
