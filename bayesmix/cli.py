"""Command-line interface: ``bayesmix fit``, ``simulate`` and ``cache``.

Applications built on the library add their own subcommands through the
``bayesmix.commands`` entry-point group: each entry point names a function
that takes the subparsers object and returns ``{name: handler}``. The paper's
``demo``, ``paper`` and ``montecarlo`` commands come in this way.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, NoReturn

from bayesmix.cache.command import register as register_cache_command
from bayesmix.errors import BayesmixError, DataError, SpecError
from bayesmix.outputs import CLI_FORMAT, check_output, write_file
from bayesmix.validate import SAMPLERS, SEED_MAX, seed_problem

if TYPE_CHECKING:
    from bayesmix.model.spec import Spec
    from bayesmix.results.interface import FitResult

Command = Callable[[argparse.Namespace], int]
"""A subcommand's handler: the parsed arguments in, the exit status out."""

COMMAND_GROUP = "bayesmix.commands"
"""The entry-point group through which applications add subcommands."""


def _format_warning(message: Any, category: type[Warning], *_: Any, **__: Any) -> str:
    return f"warning ({category.__name__}): {message}\n"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def seed_arg(text: str) -> int:
    try:
        value: int | None = int(text)
    except ValueError:
        value = None
    if value is None or seed_problem(value) is not None:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {SEED_MAX}, got {text!r}"
        )
    return value


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(
        prog="bayesmix",
        description="Multilevel regression mixture analysis by NUTS and maximum likelihood.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Command] = {"fit": _cmd_fit, "simulate": _cmd_simulate}
    _add_fit_parser(sub)
    _add_simulate_parser(sub)
    commands.update(register_cache_command(sub))
    commands.update(_plugin_commands(sub))
    return parser, commands


def _add_fit_parser(sub: argparse._SubParsersAction) -> None:
    """The ``fit`` subcommand's arguments."""
    fit = sub.add_parser("fit", help="fit a model file to data")
    fit.add_argument("spec", help="model file, e.g. models/fig1.toml")
    fit.add_argument("--data", required=True, help="CSV path or bundled data set name (hsb)")
    fit.add_argument("--estimator", choices=tuple(_ESTIMATORS), default="ml")
    fit.add_argument(
        "--classes",
        type=positive_int,
        nargs="+",
        help="number of level-1 latent classes K; several values (ML) fit each and print "
        "the comparison table (the paper's Table 2)",
    )
    fit.add_argument(
        "--lmr",
        action="store_true",
        help="with several --classes: add the Vuong-Lo-Mendell-Rubin and adjusted LMR "
        "p-values of each K against K - 1 to the table",
    )
    fit.add_argument(
        "--blrt",
        type=positive_int,
        metavar="B",
        help="with several --classes: add the bootstrap LRT's p-value of each K against "
        "K - 1 from B bootstraps (each costs two fits; --seed seeds them)",
    )
    fit.add_argument(
        "--between-classes",
        type=positive_int,
        help="number of level-2 latent classes L (model C; default: the model file's)",
    )
    fit.add_argument(
        "--starts",
        type=positive_int,
        default=20,
        help="ML random starts (with bayes: of the ML fit that starts the chains)",
    )
    fit.add_argument("--seed", type=seed_arg, help=f"random seed, 0 to {SEED_MAX}")
    fit.add_argument("--draws", type=positive_int, default=1000, help="posterior draws per chain")
    fit.add_argument("--tune", type=positive_int, default=1000, help="warm-up draws per chain")
    fit.add_argument("--chains", type=positive_int, default=4, help="chains")
    fit.add_argument(
        "--init", choices=("ml", "prior"), default="ml", help="where chains start (Bayes)"
    )
    fit.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=SAMPLERS[0],
        help="NUTS implementation (Bayes); numpyro and blackjax need pip install 'bayesmix[jax]'",
    )
    fit.add_argument(
        "--backend",
        choices=("numba", "jax"),
        help="compiler of nutpie's log-density (Bayes; default $BAYESMIX_NUTS_BACKEND, else "
        "numba); jax compiles faster and uses a GPU when JAX has one",
    )
    fit.add_argument(
        "--se",
        choices=("ml", "mlr"),
        default=None,
        help="standard errors (ML): observed information, or sandwich over the clusters "
        "(Mplus MLR); default ml, and mlr for a model with [weights]",
    )
    fit.add_argument(
        "--pseudo-likelihood",
        action="store_true",
        help="(Bayes) sample the weighted pseudo-posterior of a model with [weights]; its SDs "
        "are not design-based uncertainty",
    )
    fit.add_argument(
        "--missing",
        choices=("error", "listwise"),
        default="error",
        help="rows with missing values: stop, or drop them and report the count",
    )
    fit.add_argument("--json", metavar="PATH|-", help="write results as JSON ('-' = stdout)")
    fit.add_argument(
        "--force",
        action="store_true",
        help="let --json replace an existing file that is not a bayesmix output",
    )
    fit.add_argument("--quiet", action="store_true", help="no progress and no summary")


def _add_simulate_parser(sub: argparse._SubParsersAction) -> None:
    """The ``simulate`` subcommand's arguments."""
    sim = sub.add_parser("simulate", help="simulate data from a model file")
    sim.add_argument("spec", help="model file")
    sim.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="parameter value, repeatable (e.g. --param 'x[c1]=-1.1')",
    )
    sim.add_argument("--n", type=positive_int, help="observations (single-level models)")
    sim.add_argument(
        "--clusters", type=positive_int, metavar="J", help="number of clusters (two-level models)"
    )
    sim.add_argument(
        "--cluster-size",
        type=positive_int,
        metavar="M",
        help="observations per cluster (two-level models)",
    )
    sim.add_argument(
        "--covariates",
        metavar="FILE",
        help="CSV of covariate values to simulate at, with the cluster column for two-level "
        "models (or a bundled data set name: hsb), instead of drawing them",
    )
    sim.add_argument("--classes", type=positive_int, help="number of latent classes K")
    sim.add_argument("--seed", type=seed_arg, help=f"random seed, 0 to {SEED_MAX}")
    sim.add_argument("--out", required=True, help="CSV file to write")
    sim.add_argument("--force", action="store_true", help="replace an existing --out file")


def _plugin_commands(sub: argparse._SubParsersAction) -> dict[str, Command]:
    """The subcommands that installed applications register under ``COMMAND_GROUP``."""
    commands: dict[str, Command] = {}
    for point in sorted(entry_points(group=COMMAND_GROUP), key=lambda p: p.name):
        commands.update(point.load()(sub))
    return commands


def _emit_json(payload: dict[str, Any], target: str) -> None:
    # the marker lets a later run recognise the file as its own output and replace it
    text = json.dumps({"format": CLI_FORMAT, **payload}, indent=2)
    if target == "-":
        sys.stdout.write(text + "\n")
    else:
        write_file(target, text + "\n")


def _data_input(data: str, flag: str = "--data") -> list[tuple[str, str]]:
    """A data argument as an input file, unless it names a bundled data set."""
    from bayesmix.data.datasets import BUNDLED

    return [] if data.lower() in BUNDLED else [(flag, data)]


def _fit_ml(spec: Spec, args: argparse.Namespace) -> FitResult:
    from bayesmix.ml.fit import fit_ml

    return fit_ml(
        spec,
        args.data,
        starts=args.starts,
        random_seed=args.seed,
        missing=args.missing,
        progress=not args.quiet,
        se=args.se,
    )


def _fit_bayes(spec: Spec, args: argparse.Namespace) -> FitResult:
    from bayesmix.bayes.fit import fit_bayes

    return fit_bayes(
        spec,
        args.data,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        random_seed=args.seed,
        init=args.init,
        missing=args.missing,
        ml_starts=args.starts,
        sampler=args.sampler,
        backend=args.backend,
        progress=not args.quiet,
        pseudo_likelihood=args.pseudo_likelihood,
    )


@dataclass(frozen=True)
class _Estimator:
    """What ``bayesmix fit --estimator NAME`` runs.

    Attributes
    ----------
    fit : callable
        Fits a model to ``--data`` with the command's settings.
    compares_classes : bool
        Whether several ``--classes`` values may be fitted and compared
        (ML: each K takes seconds; NUTS would take a run per K).
    """

    fit: Callable[[Spec, argparse.Namespace], FitResult]
    compares_classes: bool


_ESTIMATORS = {
    "ml": _Estimator(_fit_ml, compares_classes=True),
    "bayes": _Estimator(_fit_bayes, compares_classes=False),
}
"""The choices of ``--estimator``."""


def _cmd_fit(args: argparse.Namespace) -> int:
    from bayesmix.model.build import load_spec

    if args.json is not None and args.json != "-":
        # before the fit: a long run must not be lost to a path that cannot take its JSON
        check_output(
            args.json,
            label="--json",
            inputs=[("model file", args.spec), *_data_input(args.data)],
            overwrite=args.force,
            force_hint="pass --force",
        )
    ks = args.classes or [None]
    repeated = sorted({k for k in ks if ks.count(k) > 1})
    if repeated:
        unique = " ".join(str(k) for k in dict.fromkeys(ks))
        raise BayesmixError(
            f"--classes gives {' and '.join(map(str, repeated))} more than once, which would "
            f"fit the same model twice; give each number of classes once, e.g. --classes {unique}."
        )
    estimator = _ESTIMATORS[args.estimator]
    if len(ks) > 1 and not estimator.compares_classes:
        raise BayesmixError(
            "several --classes values compare ML fits; with --estimator bayes give one K."
        )
    if (args.lmr or args.blrt) and (len(ks) < 2 or not estimator.compares_classes):
        raise BayesmixError(
            "--lmr and --blrt test K - 1 against K classes: give several --classes with "
            "--estimator ml, e.g. --classes 1 2 3 --lmr."
        )
    show = not args.quiet
    # With JSON on stdout the human summary goes to stderr.
    stream = sys.stderr if args.json == "-" else sys.stdout
    results: list[FitResult] = []
    for k in ks:
        spec = load_spec(args.spec, classes=k, between_classes=args.between_classes)
        result = estimator.fit(spec, args)
        if show:
            stream.write(result.summary() + "\n")
        results.append(result)
    if len(results) == 1:
        payload: Any = results[0].to_dict()
    else:
        from bayesmix.analysis.compare import compare, format_table

        table = compare(
            results,
            lmr=args.lmr,
            blrt=args.blrt or 0,
            blrt_options={"random_seed": args.seed or 0, "progress": show},
        )
        if show:
            stream.write("\nModel comparison (* = lowest BIC):\n" + format_table(table) + "\n")
        payload = {
            "comparison": json.loads(table.to_json(orient="records")),
            "fits": [r.to_dict() for r in results],
        }
    if args.json is not None:
        _emit_json(payload, args.json)
    return 0


def _parse_params(items: Sequence[str]) -> dict[str, float]:
    """``--param NAME=VALUE`` items as a mapping; each name at most once."""
    values: dict[str, float] = {}
    given: dict[str, str] = {}
    for item in items:
        # the value follows the last '=': names such as sigma2[g=1] contain one
        name, sep, value = item.rpartition("=")
        if not sep:
            raise SpecError(f"--param expects NAME=VALUE, got {item!r}.")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            raise SpecError(
                f"--param {item!r}: {value!r} is not a number; give NAME=VALUE with a decimal "
                "number as VALUE, such as -1.1 or 2.5e-3."
            ) from None
        if name in values:
            raise SpecError(
                f"--param {name!r} is given twice ({given[name]}, then {item}); give each "
                "parameter once."
            )
        values[name] = number
        given[name] = item
    return values


def _check_sizes(spec: Spec, args: argparse.Namespace) -> None:
    """Name the size flags the model at hand needs, or does not take."""
    if spec.cluster is None:
        if args.clusters is not None or args.cluster_size is not None:
            raise DataError(
                f"model {spec.name!r} is single-level (no cluster column): --clusters and "
                "--cluster-size are for two-level models; give --n N."
            )
        if args.n is None and args.covariates is None:
            raise DataError(
                f"model {spec.name!r} is single-level: give --n N (the number of observations), "
                "or --covariates FILE."
            )
    elif args.covariates is None and (args.clusters is None or args.cluster_size is None):
        alone = (
            "; --n alone does not say how to split the observations into clusters"
            if args.n is not None
            else ""
        )
        raise DataError(
            f"model {spec.name!r} is two-level (cluster column {spec.cluster!r}): give "
            "--clusters J and --cluster-size M, or --covariates FILE with the cluster column"
            f"{alone}."
        )


def _cmd_simulate(args: argparse.Namespace) -> int:
    from bayesmix.data.design import resolve_data
    from bayesmix.data.simulate import simulate
    from bayesmix.model.build import load_spec

    # a CSV carries no bayesmix marker, so any existing file is kept unless --force
    check_output(
        args.out,
        label="--out",
        inputs=[
            ("model file", args.spec),
            *([] if args.covariates is None else _data_input(args.covariates, "--covariates")),
        ],
        overwrite=args.force,
        force_hint="pass --force",
        replace_outputs=False,
        example="simulated.csv",
    )
    spec = load_spec(args.spec, classes=args.classes)
    values = _parse_params(args.param)
    _check_sizes(spec, args)
    covariates = None if args.covariates is None else resolve_data(args.covariates)
    frame = simulate(
        spec,
        values,
        n=args.n,
        clusters=args.clusters,
        cluster_size=args.cluster_size,
        covariates=covariates,
        random_seed=args.seed,
    )
    write_file(args.out, lambda fh: frame.to_csv(fh, index=False))
    sys.stdout.write(f"wrote {len(frame)} rows to {args.out}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesmix`` command."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    previous = warnings.formatwarning
    warnings.formatwarning = _format_warning  # type: ignore[assignment]
    try:
        return commands[args.command](args)
    except BayesmixError as err:
        sys.stderr.write(f"bayesmix: error: {err}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("bayesmix: interrupted\n")
        return 130
    finally:
        warnings.formatwarning = previous


def run() -> NoReturn:
    """The ``bayesmix`` console command: :func:`main`, then a prompt exit.

    After the command returns, the standard streams are flushed and the exit
    handlers run (files are closed, temporary folders removed), as at any exit;
    the interpreter's teardown of every loaded module (PyMC, pytensor, JAX,
    numba, ...), which would keep the process alive most of a second longer
    and has no effect outside it, is skipped. An exception that escapes
    :func:`main` ends the process the usual way, with its traceback.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            # a closed stream or pipe has nothing left to flush
            pass
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    run()
