"""A derandomised campaign of generated bad ``bayesmix`` command lines, run in-process.

Each example is one command line with one or two defects in its model file, its data file, its
flags or its output path. It must end with exit code 0 or 2, with no Python traceback and no
exception escaping ``main``; a refused command prints ``bayesmix: error:`` (or argparse's
``usage:``/``error:``) and names what the generator broke: the column, the option, the file or
the value. Inputs are never changed, and a refused command leaves no file behind.

Examples stay cheap: nothing fits but single-level models on 40 rows with one start by ML;
the model-file defects run against data whose outcome is constant, so that a defect that is
not refused fails on that (cheaply) rather than fitting; the ``montecarlo``, ``demo`` and
``paper`` commands only get arguments that fail before any work.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tomllib
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesmix.cli import main
from bayesmix.errors import BayesmixError, BayesmixWarning
from bayesmix.paper.section2 import FIG1_PARAMS, FIG3_PARAMS
from tests.support.cli import param_args
from tests.support.data import HSB_COLUMNS
from tests.support.paths import MODELS

MODEL_NAMES = sorted(p.stem for p in MODELS.glob("*.toml"))
DIR = object()
"""A ``Case.files`` value: the path is a folder."""
CHEAP = ["--starts", "1", "--seed", "1", "--quiet"]


@dataclass
class Case:
    """One generated command line.

    ``argv``, ``files`` keys and ``needles`` hold ``{d}`` for the example's folder. A failing
    case's message must contain one of ``needles``; ``ok`` cases must exit 0 and write
    ``outputs``.
    """

    category: str
    argv: list[str]
    files: dict[str, Any] = field(default_factory=dict)
    ok: bool = False
    needles: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


# --- data -------------------------------------------------------------------------------------


def _table(seed: int = 3, clusters: int = 8, size: int = 5) -> tuple[list[str], list[list[str]]]:
    """A valid data set for fig1 (y, x) and fig3 (y, x, w, cluster), 40 rows, as text."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(1, clusters + 1), size)
    x = rng.normal(size=len(g))
    w = rng.normal(size=clusters)[g - 1]
    c = rng.random(len(g)) < 0.5
    y = np.where(c, 1.0 + x, -1.0 - 0.5 * x) + 0.5 * w + rng.normal(scale=0.5, size=len(g))
    rows = [
        [f"{a:.6f}", f"{b:.6f}", f"{v:.6f}", str(k)] for a, b, v, k in zip(y, x, w, g, strict=True)
    ]
    return ["y", "x", "w", "cluster"], rows


def _csv(header: list[str], rows: list[list[str]], sep: str = ",") -> bytes:
    return ("\n".join(sep.join(r) for r in [header, *rows]) + "\n").encode()


def _poisoned() -> bytes:
    """Columns of every bundled model, valid but for a constant outcome (y and math)."""
    header, rows = _table()
    rng = np.random.default_rng(9)
    school = rng.normal(size=(8, 6))
    extra = []
    for i, row in enumerate(rows):
        j = int(row[3]) - 1
        female, minority = i % 2, (i // 2) % 2
        ses = rng.normal()
        extra.append([row[3], "12.5", str(female), str(minority), f"{ses:.5f}",
                      f"{school[j, 0]:.5f}", str(j % 2), f"{800 + 50 * j}",
                      f"{abs(school[j, 2]):.5f}", f"{school[j, 3]:.5f}",
                      str(int(j % 3 == 0))])  # fmt: skip
    return _csv(
        [*header, *HSB_COLUMNS],
        [["2.0", r[1], r[2], r[3], *e] for r, e in zip(rows, extra, strict=True)],
    )


TEXT = ["abc", "1.2.3", "x7", "--", "1e", "O.5"]
NAN = ["", "nan", "NaN", "NA", "null"]
INF = ["inf", "-inf", "Infinity"]
HUGE = ["1e200", "-1e300", "1e308", "3e250"]
ROW_DEFECTS = ["text", "nan", "inf", "huge", "missing column", "constant", "few rows",
               "renamed duplicate", "varies within cluster"]  # fmt: skip
FILE_DEFECTS = ["header only", "empty", "semicolons", "tabs", "not utf-8", "folder", "missing",
                "bundled", "misspelt bundled", "empty name", "extra duplicate column",
                "listwise", "byte order mark", "crlf"]  # fmt: skip
FITTED = ("extra duplicate column", "listwise", "byte order mark", "crlf")
"""File defects that leave valid data: they go with fig1, which fits in a moment."""


@st.composite
def data_cases(draw: Any) -> Case:
    model = draw(st.sampled_from(["fig1", "fig1", "fig3"]))
    whole_file = draw(st.integers(0, 3)) == 0
    what = draw(st.sampled_from(FILE_DEFECTS)) if whole_file else ""
    if what in FITTED:
        model = "fig1"
    header, rows = _table(seed=draw(st.integers(0, 50)))
    if model == "fig1":
        header, rows = header[:2], [r[:2] for r in rows]
    numeric = [c for c in header if c != "cluster"]
    path = "{d}/data.csv"
    data_arg = path
    files: dict[str, Any] = {}
    needles: list[str] = []
    defects: list[str] = []
    ok = False
    flags: list[str] = []
    if whole_file:
        defects.append(what)
        content: Any = _csv(header, rows)
        if what == "header only":
            content = _csv(header, [])
            needles = [path, "no rows"]
        elif what == "empty":
            content = b""
            needles = [path]
        elif what in ("semicolons", "tabs"):
            sep = ";" if what == "semicolons" else "\t"
            if draw(st.booleans()):  # decimal commas, as such files usually have
                rows = [[v.replace(".", ",") for v in r] for r in rows]
            content = _csv(header, rows, sep)
            needles = [path]
        elif what == "not utf-8":
            i, j = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(header) - 1))
            raw = _csv(header, rows).split(b"\n")
            cells = raw[i + 1].split(b",")
            cells[j] = b"\xff\xfe" + cells[j]
            raw[i + 1] = b",".join(cells)
            content = b"\n".join(raw)
            needles = [path]
        elif what == "folder":
            content = DIR
            needles = [path]
        elif what == "missing":
            content = None
            needles = [path]
        elif what == "bundled":
            content = None
            data_arg = draw(st.sampled_from(["hsb", "HSB", "Hsb"]))
            needles = ["'y'"]
        elif what == "misspelt bundled":
            content = None
            data_arg = draw(st.sampled_from(["hbs", "hsb.csv", "hsb_", "HSB2", "h sb"]))
            needles = [data_arg]
        elif what == "empty name":
            content = None
            data_arg = ""
            needles = ["''"]
        elif what == "extra duplicate column":  # the first column of a repeated name is used
            col = draw(st.sampled_from(header))
            content = _csv([*header, col], [[*r, r[header.index(col)]] for r in rows])
            ok = True
        elif what == "listwise":  # one row dropped, or all of them
            col = draw(st.sampled_from(header))
            every = draw(st.booleans())
            j = header.index(col)
            at = range(len(rows)) if every else [draw(st.integers(0, len(rows) - 1))]
            rows = [["" if (k == j and i in at) else v for k, v in enumerate(r)]
                    for i, r in enumerate(rows)]  # fmt: skip
            content = _csv(header, rows)
            flags = ["--missing", "listwise"]
            ok = not every
            needles = [f"'{col}'"]
        elif what == "byte order mark":
            content = b"\xef\xbb\xbf" + content
            ok = True
        else:
            content = content.replace(b"\n", b"\r\n")
            ok = True
        if content is not None:
            files[path] = content
    else:
        kinds = draw(st.lists(st.sampled_from(ROW_DEFECTS), min_size=1, max_size=2))
        if model == "fig1":
            kinds = [k for k in kinds if k != "varies within cluster"] or ["constant"]
        for what in kinds:
            defects.append(what)
            if what == "missing column":
                if len(header) < 2:
                    continue
                col = draw(st.sampled_from(header))
                j = header.index(col)
                header = header[:j] + header[j + 1 :]
                rows = [r[:j] + r[j + 1 :] for r in rows]
                needles.append(f"'{col}'")
                continue
            if what == "renamed duplicate":
                if len(header) < 2:
                    continue
                i, j = draw(st.permutations(range(len(header))))[:2]
                needles += [f"'{header[j]}'", f"'{header[i]}'"]
                header = [header[i] if k == j else h for k, h in enumerate(header)]
                continue
            if what == "few rows":
                k = draw(st.integers(1, 2))
                rows = rows[:k]
                needles += [f"only {k} usable row", f"{k} cluster"]
                continue
            cols = [c for c in numeric if c in header]
            if what == "nan":
                cols = [c for c in header]
            if what == "varies within cluster":
                cols = [c for c in ["w"] if c in header]
            if not cols:
                continue
            col = draw(st.sampled_from(cols))
            j = header.index(col)
            needles.append(f"'{col}'")
            if what == "constant":
                value = draw(st.sampled_from(["3.5", "0", "-2"]))
                rows = [[value if k == j else v for k, v in enumerate(r)] for r in rows]
                continue
            if what == "varies within cluster":
                value = "7.25"
            else:
                pool = {"text": TEXT, "nan": NAN, "inf": INF, "huge": HUGE}[what]
                value = draw(st.sampled_from(pool))
            i = draw(st.integers(0, len(rows) - 1))
            rows = [r[:] for r in rows]
            rows[i][j] = value
        files[path] = _csv(header, rows)
    argv = ["fit", str(MODELS / f"{model}.toml"), "--data", data_arg, *CHEAP, *flags]
    if not ok and not flags and draw(st.booleans()):
        argv += ["--estimator", "ml", "--missing", "error"]
    return Case("data file", argv, files, ok, needles, [], defects)


# --- model files --------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    return repr(value)


def _toml(doc: dict[str, Any]) -> bytes:
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict)]  # fmt: skip
    for key, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
    return ("\n".join(lines) + "\n").encode()


def _doc(model: str) -> dict[str, Any]:
    return tomllib.loads((MODELS / f"{model}.toml").read_text())


UNKNOWN_KEYS = ["colour", "clases", "Classes", "formula", "seed", "outcomes", "priors"]
WRONG_TYPES: list[tuple[str, str | None, Any]] = [
    ("classes", None, "two"), ("classes", None, 0), ("classes", None, -1),
    ("classes", None, 2.5), ("classes", None, True), ("classes", None, [2]),
    ("formula", "outcome", 3), ("formula", "outcome", ["y ~ x"]), ("formula", "outcome", True),
    ("class_varying", "outcome", 5), ("class_varying", "outcome", "everything"),
    ("residual_variance", "outcome", 1), ("residual_variance", "outcome", "bogus"),
    ("order_classes_by", "outcome", "zzz"), ("formula", "membership", 2),
    ("formula", "membership", "qq"), ("random", "membership", "sometimes"),
    ("cluster", None, 5), ("cluster", None, ["a"]), ("centre", None, 5),
    ("centre", None, ["nope"]), ("name", None, 3), ("classes", None, 100000000000),
    ("terms", "random", ["zz"]), ("terms", "random", "1 +"), ("covariance", "random", "diag"),
    ("classes", "between", "two"), ("varying", "between", ["zz"]),
    ("residual_covariates", "outcome", ["zz"]), ("residual_groups", "outcome", 3),
]  # fmt: skip
BAD_FORMULAS = ["y ~ ~ x", "y ~ x +", "~ x", "y ~ (x", "y x", "y ~ x ++ x", "y ~ nosuch",
                "y ~ x*", "", "y ~ x + 1 + 2", "y ~ x:", "y ~ log(x)"]  # fmt: skip
MODEL_DEFECTS = ["unknown key", "unknown table key", "wrong type", "bad formula",
                 "missing outcome", "missing formula", "between without cluster",
                 "cluster in formula", "classes flag"]  # fmt: skip
MODEL_FILE_DEFECTS = ["binary", "empty", "folder", "missing", "invalid toml", "empty path"]
INVALID_TOML = ["classes = = 2", "[outcome", 'formula = "y ~ x', "classes = 2\nclasses = 3",
                "= 1", "[outcome]\nformula = 1 2"]  # fmt: skip


def _value_needles(value: Any) -> list[str]:
    return [repr(value), str(value)] if not isinstance(value, bool) else ["True", "true"]


@st.composite
def model_cases(draw: Any) -> Case:
    model = draw(st.sampled_from(MODEL_NAMES))
    path = "{d}/model.toml"
    files: dict[str, Any] = {"{d}/data.csv": _poisoned()}
    extra: list[str] = []
    needles: list[str] = []
    defects: list[str] = []
    if draw(st.integers(0, 4)) == 0:
        what = draw(st.sampled_from(MODEL_FILE_DEFECTS))
        defects.append(what)
        if what == "binary":
            files[path] = b"\x89PNG\r\n\x1a\n\x00\xff" + draw(st.binary(max_size=30))
        elif what == "empty":
            files[path] = b""
            needles.append("outcome")
        elif what == "folder":
            files[path] = DIR
        elif what == "invalid toml":
            text = (MODELS / f"{model}.toml").read_text().splitlines()
            at = draw(st.integers(0, len(text)))
            broken = draw(st.sampled_from(INVALID_TOML))
            files[path] = "\n".join([*text[:at], broken, *text[at:]]).encode()
        elif what == "empty path":
            path = ""
            needles.append("''")
        needles.append(path or "empty")
    else:
        doc = _doc(model)
        for what in draw(st.lists(st.sampled_from(MODEL_DEFECTS), min_size=1, max_size=2)):
            defects.append(what)
            tables = [k for k, v in doc.items() if isinstance(v, dict) and k != "level2"]
            if what == "unknown key":
                key = draw(st.sampled_from(UNKNOWN_KEYS))
                doc[key] = draw(st.sampled_from([1, "x", True]))
                needles.append(key)
            elif what == "unknown table key" and tables:
                table = draw(st.sampled_from(tables))
                key = draw(st.sampled_from([k for k in UNKNOWN_KEYS if k not in doc[table]
                                            and k != "formula"]))  # fmt: skip
                doc[table][key] = 1
                needles.append(key)
            elif what == "wrong type":
                key, table, value = draw(st.sampled_from(WRONG_TYPES))
                where = doc if table is None else doc.setdefault(table, {})
                if not isinstance(where, dict):
                    continue
                where[key] = value
                needles += [key, *_value_needles(value)]
            elif what == "bad formula":
                formula = draw(st.sampled_from(BAD_FORMULAS))
                if "outcome" in doc and isinstance(doc["outcome"], dict):
                    doc["outcome"]["formula"] = formula
                needles += [repr(formula), "nosuch", "formula"]
            elif what == "missing outcome":
                doc.pop("outcome", None)
                needles.append("outcome")
            elif what == "missing formula":
                if isinstance(doc.get("outcome"), dict):
                    doc["outcome"].pop("formula", None)
                needles.append("formula")
            elif what == "between without cluster":
                doc.pop("cluster", None)
                doc["between"] = {"classes": 2, "formula": draw(st.sampled_from(["x", "w"]))}
                needles += ["cluster"]
            elif what == "cluster in formula":
                doc["cluster"] = doc.get("cluster", "cluster")
                if isinstance(doc.get("outcome"), dict):
                    doc["outcome"]["formula"] = (
                        f"{doc['outcome'].get('formula', 'y ~ x')} + {doc['cluster']}"
                    )
                needles.append(f"'{doc['cluster']}'")
            else:
                value = draw(st.sampled_from(["0", "-1", "two", "1.5", "2 2"]))
                extra += ["--classes", *value.split()]
                needles += ["--classes"]
        if not needles:  # the drawn defects found nothing to break
            doc["colour"] = "red"
            needles.append("colour")
        files[path] = _toml(doc)
    argv = ["fit", path, "--data", "{d}/data.csv", *extra, *CHEAP]
    return Case("model file", argv, files, False, needles, [], defects)


# --- flags --------------------------------------------------------------------------------------

FIT_FLAGS: list[tuple[list[str], list[str]]] = [
    *[(["--classes", v], ["--classes"]) for v in ["0", "-1", "two", "1.5", ""]],
    (["--classes", "2", "2"], ["--classes"]), (["--classes", "1", "2", "1"], ["--classes"]),
    *[(["--classes", v], [v]) for v in ["40", "1000", "100000000000", str(2**64)]],
    (["--between-classes", "2"], ["cluster"]), (["--between-classes", "0"], ["--between-classes"]),
    *[(["--starts", v], ["--starts"]) for v in ["0", "-1", "abc", "2.5"]],
    *[(["--seed", v], ["--seed"]) for v in ["-1", "1.5", str(2**32), "abc", "1e3", ""]],
    *[([f"--{o}", v], [f"--{o}"]) for o in ("draws", "tune", "chains") for v in ("0", "-3")],
    (["--estimator", "bad"], ["--estimator"]), (["--estimator", "ML"], ["--estimator"]),
    (["--missing", "bad"], ["--missing"]), (["--missing", "drop"], ["--missing"]),
    (["--backend", "bad"], ["--backend"]), (["--init", "zero"], ["--init"]),
    (["--colour"], ["--colour"]), (["--verbose"], ["--verbose"]), (["-z", "1"], ["-z"]),
    (["--classes", "2", "3", "--estimator", "bayes"], ["--classes"]),
    (["--json"], ["--json"]), (["--data"], ["--data"]),
]  # fmt: skip
SIMULATE_DEFECTS = ["no =", "not a number", "repeated", "unknown name", "negative variance",
                    "not finite", "missing value", "sizes", "covariates file",
                    "classes"]  # fmt: skip
OTHER_COMMANDS = ["montecarlo study", "montecarlo replications", "montecarlo seed",
                  "montecarlo suite", "demo seed", "paper seed", "no command",
                  "unknown command"]  # fmt: skip


@st.composite
def flag_cases(draw: Any) -> Case:
    command = draw(st.sampled_from(["fit", "fit", "simulate", "simulate", "other"]))
    files: dict[str, Any] = {}
    if command == "fit":
        header, rows = _table()
        files["{d}/data.csv"] = _csv(header[:2], [r[:2] for r in rows])
        picks = draw(st.lists(st.sampled_from(FIT_FLAGS), min_size=1, max_size=2))
        argv = ["fit", str(MODELS / "fig1.toml"), "--data", "{d}/data.csv", *CHEAP]
        needles = []
        for flags, words in picks:
            argv += flags
            needles += words
        return Case("flag", argv, files, False, needles, [], [" ".join(f) for f, _ in picks])
    if command == "simulate":
        model = draw(st.sampled_from(["fig1", "fig1", "fig3"]))
        values = dict(FIG1_PARAMS if model == "fig1" else FIG3_PARAMS)
        sizes = ["--n", "40"] if model == "fig1" else ["--clusters", "5", "--cluster-size", "4"]
        params = param_args(values)
        what = draw(st.sampled_from(SIMULATE_DEFECTS))
        name = draw(st.sampled_from(sorted(values)))
        needles: list[str] = []
        if what == "no =":
            params += ["--param", draw(st.sampled_from([name, "=5", " =1"]))]
            needles = [params[-1], "''"]
        elif what == "not a number":
            text = draw(st.sampled_from(["abc", "1,5", "", "one"]))
            params += ["--param", f"{name}={text}"] if text else []
            params = [p if p != f"{name}={values[name]}" else f"{name}={text}" for p in params]
            needles = [repr(text), name]
        elif what == "repeated":
            params += ["--param", f"{name}={values[name] + 1}"]
            needles = [name]
        elif what == "unknown name":
            bogus = draw(st.sampled_from(["bogus", "x[c3]", "sigma", "1[c1 ]", "C#2 ~ 1"]))
            params += ["--param", f"{bogus}=1"]
            needles = [bogus]
        elif what == "negative variance":
            variances = [n for n in values if n.startswith(("sigma2", "var("))]
            name = draw(st.sampled_from(variances))
            params = [p if p != f"{name}={values[name]}" else f"{name}=-1" for p in params]
            needles = [name]
        elif what == "not finite":
            text = draw(st.sampled_from(["nan", "inf", "-inf", "1e999"]))
            params = [p if p != f"{name}={values[name]}" else f"{name}={text}" for p in params]
            needles = [name]
        elif what == "missing value":
            params = param_args({k: v for k, v in values.items() if k != name})
            needles = [name]
        elif what == "sizes":
            options = {
                "fig1": [(["--clusters", "5"], "--clusters"), ([], "--n"),
                         (["--cluster-size", "3", "--n", "40"], "--cluster-size"),
                         (["--n", "0"], "--n"), (["--n", "2.5"], "--n")],
                "fig3": [(["--n", "40"], "--clusters"), (["--clusters", "5"], "--cluster-size"),
                         (["--cluster-size", "4"], "--clusters"), ([], "--clusters"),
                         (["--clusters", "0", "--cluster-size", "4"], "--clusters"),
                         (["--clusters", "2.5", "--cluster-size", "4"], "--clusters")],
            }[model]  # fmt: skip
            sizes, word = draw(st.sampled_from(options))
            needles = [word]
        elif what == "covariates file":
            given = draw(st.sampled_from(["{d}/nope.csv", "{d}", "hsb", ""]))
            sizes = [*sizes, "--covariates", given]
            needles = {"hsb": ["'x'", "'w'", "'cluster'"], "": ["''"]}.get(given, [given])
        else:
            k = draw(st.sampled_from(["3", "0", "100000000000"]))
            sizes = [*sizes, "--classes", k]
            needles = ["c3", "C#3", "--classes", k]
        argv = ["simulate", str(MODELS / f"{model}.toml"), *sizes, *params,
                "--out", "{d}/sim.csv", "--seed", "1"]  # fmt: skip
        return Case("flag", argv, files, False, needles, [], [f"simulate: {what}"])
    what = draw(st.sampled_from(OTHER_COMMANDS))
    base = ["montecarlo", "section2", "--study", "recovery", "--replications", "1",
            "--workers", "1"]  # fmt: skip
    seed = draw(st.sampled_from(["-1", "1.5", str(2**32), "x"]))
    argv, needles = {
        "montecarlo study": (
            [*base[:2], "--study", draw(st.sampled_from(["bad", "Recovery", ""]))],
            ["--study"],
        ),
        "montecarlo replications": (
            [*base[:4], "--replications", draw(st.sampled_from(["0", "-1", "abc", "1.5"]))],
            ["--replications"],
        ),
        "montecarlo seed": ([*base, "--seed", seed], ["--seed"]),
        "montecarlo suite": (["montecarlo", "section3", "--study", "recovery"], ["section3"]),
        "demo seed": (["demo", "--out", "{d}/demo", "--seed", seed], ["--seed"]),
        "paper seed": (["paper", "--out", "{d}/paper", "--quick", "--seed", seed], ["--seed"]),
        "no command": ([], ["command"]),
        "unknown command": (["fitt", "x"], ["fitt"]),
    }[what]
    return Case("flag", argv, files, False, needles, [], [what])


# --- output paths -------------------------------------------------------------------------------

OUTPUT_TARGETS = ["missing folder", "data file", "model file", "foreign file", "forced foreign",
                  "bayesmix output", "under a file", "folder", "stdout",
                  "covariates file", "empty"]  # fmt: skip


@st.composite
def output_cases(draw: Any) -> Case:
    command = draw(st.sampled_from(["fit", "fit", "simulate", "montecarlo", "demo", "paper"]))
    header, rows = _table()
    data = _csv(header[:2], [r[:2] for r in rows])
    files: dict[str, Any] = {
        "{d}/data.csv": data,
        "{d}/model.toml": (MODELS / "fig1.toml").read_bytes(),
        "{d}/notes.txt": b"my notes\n",
        "{d}/folder": DIR,
        "{d}/old.json": json.dumps({"format": "bayesmix-fit"}).encode(),
    }
    target = draw(st.sampled_from(OUTPUT_TARGETS))
    force: list[str] = []
    ok = False
    path = {
        "missing folder": "{d}/new/sub/out.json",
        "data file": "{d}/data.csv",
        "model file": "{d}/model.toml",
        "foreign file": "{d}/notes.txt",
        "forced foreign": "{d}/notes.txt",
        "bayesmix output": "{d}/old.json",
        "under a file": "{d}/notes.txt/out.json",
        "folder": "{d}/folder",
        "stdout": "-",
        "covariates file": "{d}/data.csv",
        "empty": "",
    }[target]
    if target == "forced foreign":
        force = ["--force"]
    if command in ("fit", "simulate"):
        ok = target in ("missing folder", "forced foreign", "stdout")
        if command == "fit":
            # a bayesmix JSON is replaced by fit --json, a simulated CSV never replaces a file
            ok = ok or target == "bayesmix output"
            if target == "covariates file":
                target, path = "data file", "{d}/data.csv"
            argv = ["fit", "{d}/model.toml", "--data", "{d}/data.csv", "--json", path,
                    *force, *CHEAP]  # fmt: skip
            outputs = [path] if ok and path != "-" else []
        else:
            if target == "stdout":
                target, path = "missing folder", "{d}/new/sim.csv"
                ok = True
            if target == "covariates file":
                force = ["--force"]
            argv = ["simulate", "{d}/model.toml", "--n", "40", *param_args(FIG1_PARAMS),
                    "--out", path, *force, "--seed", "1"]  # fmt: skip
            if target in ("data file", "covariates file"):
                argv[2:4] = ["--covariates", "{d}/data.csv"]
            outputs = [path] if ok else []
        needles = [path or "empty path"]
        return Case("output path", argv, files, ok, needles, outputs, [f"{command}: {target}"])
    # these commands must fail before any work: the target is never a usable new path
    if target in (
        "missing folder",
        "stdout",
        "forced foreign",
        "bayesmix output",
        "covariates file",
        "folder",
    ) and (command != "montecarlo" or target != "folder"):
        target, path = "under a file", "{d}/notes.txt/out"
    if command == "montecarlo":
        argv = ["montecarlo", "section2", "--study", "recovery", "--replications", "1",
                "--workers", "1", "--out", path]  # fmt: skip
        if target == "folder":
            files["{d}/folder/keep.txt"] = b"keep\n"
        if target in ("data file", "model file", "foreign file"):
            files[path] = draw(st.sampled_from([b"my notes\n", b"\xff\xfe\x00\x01", b"[1, 2]\n",
                                                b'{"study": "x"}\n', b"{}\n"]))  # fmt: skip
    else:
        argv = [command, "--out", path, *(["--quick"] if command == "paper" else [])]
    return Case("output path", argv, files, False, [path or "empty path"], [],
                [f"{command}: {target}"])  # fmt: skip


# --- running ------------------------------------------------------------------------------------

TALLY: Counter[tuple[str, str]] = Counter()
WARNED: Counter[str] = Counter()


@contextlib.contextmanager
def _recording_errors() -> Iterator[list[BayesmixError]]:
    """Every BayesmixError made meanwhile, so that the tally names the class main() caught."""
    made: list[BayesmixError] = []
    original = BayesmixError.__init__

    def init(self: BayesmixError, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    BayesmixError.__init__ = init  # type: ignore[method-assign]
    try:
        yield made
    finally:
        BayesmixError.__init__ = original  # type: ignore[method-assign]


def _materialise(case: Case, folder: Path) -> Callable[[str], str]:
    def fill(text: str) -> str:
        return text.replace("{d}", str(folder))

    for name, content in case.files.items():
        path = Path(fill(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is DIR:
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(content)
    return fill


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_case(case: Case, folder: Path) -> tuple[str, str]:
    """Run one case; return its outcome class and its stderr, after checking them."""
    fill = _materialise(case, folder)
    argv = [fill(a) for a in case.argv]
    before = _snapshot(folder)
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(record=True) as record,
        _recording_errors() as made,
    ):
        warnings.simplefilter("always")
        try:
            code: Any = main(argv)
        except SystemExit as exit_:
            code = exit_.code
            outcome = f"argparse exit {code}"
        else:
            outcome = f"exit {code}"
    stderr = err.getvalue()
    for w in record:
        WARNED[w.category.__name__] += 1
        assert issubclass(w.category, BayesmixWarning), (argv, w)
    assert "Traceback" not in stderr, (argv, stderr)
    assert code in (0, 2), (argv, code, stderr)
    after = _snapshot(folder)
    written = {fill(o) for o in case.outputs}
    changed = {k for k in before if before[k] != after.get(k)}
    assert {str(folder / k) for k in changed} <= written, (argv, "changed an input", changed)
    if case.ok:
        assert code == 0, (argv, case.defects, stderr)
        for path in written:
            assert Path(path).is_file(), (argv, path)
            if case.argv[0] == "fit":
                assert json.loads(Path(path).read_text())["format"] == "bayesmix-fit"
        return outcome, stderr
    assert code == 2, (argv, case.defects, "was not refused", out.getvalue()[-500:])
    new = set(after) - set(before)
    assert not new, (argv, "left files behind", new)
    needles = [fill(n) for n in case.needles]
    if outcome.startswith("argparse"):
        assert stderr.startswith("usage: bayesmix"), (argv, stderr)
        message = stderr.splitlines()[-1]
        assert message.startswith("bayesmix") and ": error: " in message, (argv, stderr)
    else:
        assert stderr.startswith("bayesmix: error: "), (argv, stderr)
        assert stderr.count("\n") == 1, (argv, stderr)
        message = stderr.removeprefix("bayesmix: error: ").rstrip("\n")
        caught = [e for e in made if str(e) == message]
        assert caught, (argv, message)
        outcome = type(caught[-1]).__name__
    assert any(n in message for n in needles), (argv, case.defects, needles, message)
    return outcome, stderr


@st.composite
def cases(draw: Any) -> Case:
    return draw(st.one_of(model_cases(), data_cases(), flag_cases(), output_cases()))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("campaign")


COUNT = Counter[str]()


@settings(
    max_examples=400, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)  # fmt: skip
@given(case=cases())
def _campaign(case: Case, work: Path) -> None:
    COUNT["n"] += 1
    folder = work / f"case{COUNT['n']}"
    folder.mkdir()
    outcome, _ = run_case(case, folder)
    TALLY[(case.category, outcome)] += 1


def test_generated_bad_command_lines_end_in_named_errors(work: Path) -> None:
    TALLY.clear()
    WARNED.clear()
    _campaign(work=work)
    by_category = Counter[str]()
    for (category, _), n in TALLY.items():
        by_category[category] += n
    print(f"\ngenerated command lines: {dict(by_category.most_common())}")
    for (category, outcome), n in sorted(TALLY.items()):
        print(f"  {category:12} {outcome:22} {n}")
    print(f"warnings: {dict(WARNED.most_common())}")
    assert sum(by_category.values()) >= 300
