"""The bootstrap likelihood-ratio test's result: the observed statistic and its bootstraps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.errors import EstimationError


@dataclass(frozen=True, eq=False)
class BLRTResult:
    """A parametric bootstrap likelihood-ratio test of fewer against more classes.

    Attributes
    ----------
    smaller, larger : str
        Model names.
    smaller_classes, larger_classes : int
        Their numbers of classes.
    statistic : float
        The observed ``2 (log L_larger - log L_smaller)``.
    bootstraps : int
        Bootstrap data sets asked for.
    records : list of dict
        One per bootstrap, in order: ``replication``, ``seed``, ``ok`` and,
        when it fitted, ``loglik_smaller``, ``loglik_larger``, ``lr``,
        ``converged_smaller``, ``converged_larger``, ``replicated_larger``
        (starts of the larger fit that reached its best log-likelihood),
        ``warnings`` and ``seconds``; ``error`` when it failed.
    random_seed : int
        Seed of the bootstraps.
    elapsed_s : float
        Seconds of this call (bootstraps resumed from a file cost none).
    """

    smaller: str
    larger: str
    smaller_classes: int
    larger_classes: int
    statistic: float
    bootstraps: int
    records: list[dict[str, Any]]
    random_seed: int
    elapsed_s: float = float("nan")

    @property
    def lr(self) -> np.ndarray:
        """The bootstrap statistics of the data sets where both fits succeeded."""
        return np.array([r["lr"] for r in self.records if r["ok"]], dtype=float)

    @property
    def completed(self) -> int:
        """Bootstraps whose two fits succeeded."""
        return int(sum(1 for r in self.records if r["ok"]))

    @property
    def failed(self) -> int:
        """Bootstraps where a fit raised an error (left out of the p-value)."""
        return int(sum(1 for r in self.records if not r["ok"]))

    @property
    def negative(self) -> int:
        """Bootstraps where the larger model fitted worse than the smaller one.

        A negative bootstrap statistic means the larger fit's starts missed
        the smaller solution, which it contains: more starts (``starts``) are
        needed. Such bootstraps still count, as the statistic they gave.
        """
        return int(np.sum(self.lr < 0))

    @property
    def not_converged(self) -> int:
        """Bootstraps where either fit did not converge."""
        return int(
            sum(
                1
                for r in self.records
                if r["ok"] and not (r["converged_smaller"] and r["converged_larger"])
            )
        )

    @property
    def p_value(self) -> float:
        """``(1 + #{LR_b >= LR_obs}) / (B + 1)`` over the B completed bootstraps.

        With B + 1 a multiple of 1/alpha (19 for 5%, 99 for 1%) the test
        that rejects at ``p <= alpha`` has size alpha exactly, when the
        smaller model is true and its estimates are the population's.
        """
        exceed = int(np.sum(self.lr >= self.statistic))
        return (1 + exceed) / (self.completed + 1)

    def table(self) -> pd.DataFrame:
        """One row per bootstrap: its seed, log-likelihoods, statistic and diagnostics."""
        rows = [
            {k: v for k, v in r.items() if k not in ("traceback",)} | {"warnings": _joined(r)}
            for r in self.records
        ]
        return pd.DataFrame(rows).set_index("replication")

    def summary(self) -> str:
        """The test as Mplus's TECH14 reports it, with the bootstraps' diagnostics."""
        lines = [
            f"Bootstrap LRT for {self.smaller_classes} (H0, {self.smaller}) versus "
            f"{self.larger_classes} classes ({self.larger})",
            f"  2 times the log-likelihood difference   {self.statistic:12.3f}",
            f"  bootstrap draws completed               {self.completed:12d} of {self.bootstraps}",
            f"  approximate p-value                     {self.p_value:12.4f}",
            f"  failed fits                             {self.failed:12d}",
            f"  larger fit below the smaller (LR < 0)   {self.negative:12d}",
            f"  fits not converged                      {self.not_converged:12d}",
            f"  seed {self.random_seed}, {self.elapsed_s:.1f} s",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of the test, without the per-bootstrap records."""
        return {
            "test": "blrt",
            "smaller": self.smaller,
            "larger": self.larger,
            "smaller_classes": self.smaller_classes,
            "larger_classes": self.larger_classes,
            "statistic": self.statistic,
            "bootstraps": self.bootstraps,
            "completed": self.completed,
            "failed": self.failed,
            "negative": self.negative,
            "not_converged": self.not_converged,
            "p_value": self.p_value,
            "random_seed": self.random_seed,
            "elapsed_s": self.elapsed_s,
        }

    @classmethod
    def load(cls, path: str | Path) -> BLRTResult:
        """Read a test back from the ``out=`` file of :func:`bayesmix.blrt`.

        Every bootstrap in the file counts; ``elapsed_s`` is not kept.
        """
        lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
        try:
            header = json.loads(lines[0])["study"]
            test = header["blrt"]
            records = []
            for i, line in enumerate(lines[1:], start=2):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    # a last line cut short by an interruption is no bootstrap
                    if i < len(lines):
                        raise
        except (IndexError, KeyError, TypeError, json.JSONDecodeError):
            raise EstimationError(
                f"{path} is not the out= file of bayesmix.blrt; give the file a test wrote."
            ) from None
        records.sort(key=lambda r: r["replication"])
        return cls(
            smaller=test["smaller"],
            larger=test["larger"],
            smaller_classes=test["smaller_classes"],
            larger_classes=test["larger_classes"],
            statistic=test["statistic"],
            bootstraps=len(records),
            records=records,
            random_seed=header["random_seed"],
        )


def _joined(record: dict[str, Any]) -> str:
    return "; ".join(record.get("warnings", []))
