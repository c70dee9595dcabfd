"""The paper's subcommands: ``bayesmix demo``, ``paper`` and ``montecarlo section2``.

Registered under the ``bayesmix.commands`` entry-point group (see ``pyproject.toml``),
so the library's command line offers them without importing the application.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bayesmix.cli import Command, positive_int, seed_arg
from bayesmix.outputs import check_folder, check_output
from bayesmix.validate import SEED_MAX


def register(sub: argparse._SubParsersAction) -> dict[str, Command]:
    """Add the paper's subcommands to ``sub``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``bayesmix`` command's subparsers.

    Returns
    -------
    dict
        Each subcommand's name and handler.
    """
    demo = sub.add_parser(
        "demo",
        help="the paper's Section 2.1 (Fig 1 data by ML and NUTS) and Section 3.1 "
        "(HSB models 1, 1b, 1c by ML)",
    )
    demo.add_argument("--out", default="bayesmix-output", help="folder for figures and JSON")
    demo.add_argument("--quick", action="store_true", help="fewer draws")
    demo.add_argument(
        "--seed", type=seed_arg, default=20090301, help=f"random seed, 0 to {SEED_MAX}"
    )

    paper = sub.add_parser(
        "paper",
        help="the paper's Section 3 analysis on HSB: models 1, 1b, 1c, A2-A4, B2-B4, C23 by "
        "ML, models 1 and B3 by NUTS, Tables 1 and 2, Figs 5, 6, 8 and a Markdown report",
    )
    paper.add_argument("--out", default="bayesmix-output", help="folder for tables, figures")
    paper.add_argument(
        "--quick",
        action="store_true",
        help="smaller run: models 1, 1b, 1c, A2, B2 by ML (4 starts), model 1 by NUTS",
    )
    paper.add_argument(
        "--seed", type=seed_arg, default=20090301, help=f"random seed, 0 to {SEED_MAX}"
    )
    paper.add_argument(
        "--lmr",
        action="store_true",
        help="add the Vuong-Lo-Mendell-Rubin and adjusted LMR p-values to Table 2",
    )
    paper.add_argument(
        "--blrt",
        type=positive_int,
        metavar="B",
        help="add the bootstrap LRT's p-value from B bootstraps to Table 2 (each costs two "
        "fits of the model)",
    )
    paper.add_argument(
        "--workers", type=positive_int, default=1, help="local processes of the bootstrap LRT"
    )

    mc = sub.add_parser("montecarlo", help="Monte Carlo studies (the paper's Section 2.2)")
    mc.add_argument("suite", choices=("section2",), help="set of studies")
    mc.add_argument(
        "--study",
        required=True,
        choices=("recovery", "conventional-on-mixture", "mixture-on-conventional"),
    )
    mc.add_argument("--replications", type=positive_int, default=100)
    mc.add_argument(
        "--estimator",
        choices=tuple(_STUDY_ESTIMATORS),
        default="ml",
        help="both: the same data sets by ML and by NUTS, with coverage side by side",
    )
    mc.add_argument("--draws", type=positive_int, default=1000, help="NUTS draws per chain")
    mc.add_argument("--tune", type=positive_int, default=1000, help="NUTS tuning steps per chain")
    mc.add_argument("--chains", type=positive_int, default=4, help="NUTS chains")
    mc.add_argument("--workers", type=positive_int, help="local processes (default: all cores)")
    mc.add_argument("--scheduler", help="Dask scheduler address, instead of local processes")
    mc.add_argument("--out", help="JSON-lines file of replications (resumes if it exists)")
    mc.add_argument(
        "--seed", type=seed_arg, default=0, help=f"random seed of the study, 0 to {SEED_MAX}"
    )
    mc.add_argument("--starts", type=positive_int, default=20, help="ML random starts")
    return {"demo": _cmd_demo, "paper": _cmd_paper, "montecarlo": _cmd_montecarlo}


def _cmd_demo(args: argparse.Namespace) -> int:
    from bayesmix.paper.demo import run_fig1_demo, run_hsb_conventional_demo

    check_folder(args.out)
    run_fig1_demo(Path(args.out), quick=args.quick, seed=args.seed)
    sys.stdout.write("\n")
    run_hsb_conventional_demo(Path(args.out))
    return 0


def _cmd_paper(args: argparse.Namespace) -> int:
    from bayesmix.paper.runs import run_paper

    check_folder(args.out)
    run_paper(
        Path(args.out),
        quick=args.quick,
        seed=args.seed,
        lmr=args.lmr,
        blrt=args.blrt or 0,
        workers=args.workers,
    )
    return 0


_STUDY_ESTIMATORS: dict[str, tuple[str, ...]] = {
    "ml": ("ml",),
    "bayes": ("bayes",),
    "both": ("ml", "bayes"),
}
"""The studies ``montecarlo --estimator`` runs, by estimator."""

_FIT_OPTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "ml": lambda args: {"starts": args.starts},
    "bayes": lambda args: {"draws": args.draws, "tune": args.tune, "chains": args.chains},
}
"""The command's options each estimator's fits take."""


def _cmd_montecarlo(args: argparse.Namespace) -> int:
    from bayesmix.analysis.montecarlo import compare_estimators, montecarlo
    from bayesmix.formatting import format_table
    from bayesmix.paper.section2 import section2_study

    estimators = _STUDY_ESTIMATORS[args.estimator]
    outs: dict[str, str | None] = dict.fromkeys(estimators, args.out)
    if args.out is not None and len(estimators) > 1:
        path = Path(args.out)
        outs = {est: str(path.with_name(f"{path.stem}-{est}{path.suffix}")) for est in estimators}
    for out in outs.values():
        if out is not None:
            # before the first replication; an existing file is the study to resume
            check_output(out, label="--out", overwrite=True, example="study.jsonl")
    results = {}
    for est in estimators:
        results[est] = montecarlo(
            **section2_study(args.study, args.replications),
            estimator=est,
            random_seed=args.seed,
            workers=args.workers,
            client=args.scheduler,
            out=outs[est],
            **_FIT_OPTIONS[est](args),
        )
        sys.stdout.write(results[est].summary() + "\n\n")
    if len(results) == 2:
        table = compare_estimators(results["ml"], results["bayes"])
        sys.stdout.write(
            f"ML Wald and Bayes 95% intervals over the same "
            f"{table.attrs['paired_replications']} data sets "
            f"(Bayes fits not converged: {table.attrs['bayes_not_converged']}):\n"
            + format_table(table)
            + "\n"
        )
    return 0
