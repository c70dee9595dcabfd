"""The structure checker (scripts/check_structure.py) on small synthetic packages.

These test the checker itself, on trees written for each case; `make lint` runs
it on the real package.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_structure.py"


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_structure", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up by name while building the classes
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def _tree(root: Path, files: dict[str, str]) -> Path:
    """Write a package ``bayesmix`` under ``root``; every folder gets an ``__init__.py``."""
    package = root / "bayesmix"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, source in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = path.parent
        while folder != package:
            init = folder / "__init__.py"
            if not init.exists():
                init.write_text("")
            folder = folder.parent
        path.write_text(textwrap.dedent(source))
    return package


def _messages(package: Path) -> list[str]:
    violations, _ = checker.check(package)
    return [str(v) for v in violations]


def _function(name: str, body_lines: int, docstring_lines: int = 0) -> str:
    lines = [f"def {name}(x):"]
    if docstring_lines:
        lines.append('    """Summary.')
        lines += ["    more"] * (docstring_lines - 2)
        lines.append('    """')
    lines += ["    x = x + 1"] * (body_lines - 1)
    lines.append("    return x")
    return "\n".join(lines) + "\n"


def test_clean_tree_passes_with_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    package = _tree(
        tmp_path,
        {
            "model/spec.py": "from bayesmix.model import formula\n\n\ndef make(): ...\n",
            "model/formula.py": "import math\n",
            "results/fits.py": (
                "class MLResult: ...\n\n\ndef kind(r):\n"
                "    return 'ml' if isinstance(r, MLResult) else r.estimator == 'bayes'\n"
            ),
            "paper/runs.py": "from bayesmix.model.spec import make\n",
            "cli.py": (
                "def fail(x):\n"
                "    if __name__ == '__main__':\n"
                "        raise TypeError(f'expected a result, got {type(x).__name__}')\n"
            ),
        },
    )
    assert _messages(package) == []
    assert checker.main([str(package)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("structure ok: 9 modules")


def test_cycle_through_an_import_inside_a_function(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "a.py": "from bayesmix import b\n",
            "b.py": "def late():\n    from bayesmix.c import thing\n    return thing\n",
            "c.py": "from . import a\n\nthing = 1\n",
        },
    )
    assert _messages(package) == [
        "bayesmix/a.py:1: import cycle: bayesmix.a -> bayesmix.b -> bayesmix.c -> bayesmix.a"
    ]


def test_cycle_through_a_package_init_and_plain_import(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "__init__.py": "from bayesmix.x.y import f\n",
            "x/y.py": "def f():\n    import bayesmix\n    return bayesmix\n",
        },
    )
    (package / "__init__.py").write_text("from bayesmix.x.y import f\n")
    assert _messages(package) == [
        "bayesmix/__init__.py:1: import cycle: bayesmix -> bayesmix.x.y -> bayesmix"
    ]


def test_imports_under_type_checking_make_no_cycle(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "a.py": "from bayesmix.b import B\n\n\nclass A: ...\n",
            "b.py": (
                "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                "    from bayesmix.a import A\n\n\nclass B: ...\n"
            ),
        },
    )
    assert _messages(package) == []


def test_long_function_counts_from_after_its_docstring(tmp_path: Path) -> None:
    limit = checker.MAX_FUNCTION_LINES
    package = _tree(
        tmp_path,
        {
            "ok.py": _function("documented", limit, docstring_lines=30),
            "long.py": "class Thing:\n" + textwrap.indent(_function("method", limit + 1), "    "),
        },
    )
    assert _messages(package) == [
        f"bayesmix/long.py:2: function Thing.method has {limit + 1} lines (limit {limit})"
    ]


def test_long_module(tmp_path: Path) -> None:
    limit = checker.MAX_MODULE_LINES
    package = _tree(tmp_path, {"big.py": "x = 1\n" * (limit + 1), "fits.py": "x = 1\n" * limit})
    assert _messages(package) == [
        f"bayesmix/big.py:1: module has {limit + 1} lines (limit {limit})"
    ]


def test_isinstance_on_a_result_class_in_a_tuple(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "plots/figures.py": (
                "from bayesmix.results.fits import BayesResult, MLResult\n\n\n"
                "def draw(r):\n"
                "    if not isinstance(r, (int, MLResult)):\n"
                "        return 1\n"
                "    return isinstance(r, BayesResult | None)\n"
            ),
            "results/fits.py": "class MLResult: ...\n\n\nclass BayesResult: ...\n",
        },
    )
    assert _messages(package) == [
        "bayesmix/plots/figures.py:5: branches on the estimator (isinstance on MLResult); "
        "use the results interface",
        "bayesmix/plots/figures.py:7: branches on the estimator (isinstance on BayesResult); "
        "use the results interface",
    ]


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ('args.estimator != "ml"', "comparison with an attribute named estimator"),
        ('fit.estimator in ("ml", "bayes")', "comparison with an attribute named estimator"),
        (
            '(a.estimator, b.estimator) == ("ml", "bayes")',
            "comparison with an attribute named estimator",
        ),
        ('hasattr(fit, "idata")', 'hasattr(..., "idata")'),
        ('type(fit).__name__ == "MLResult"', "comparison with a type's name"),
        ("type(fit) is BayesResult", "comparison with a type"),
        ('"BayesResult" == name', 'comparison with the string "BayesResult"'),
    ],
)
def test_branches_on_the_estimator(tmp_path: Path, condition: str, reason: str) -> None:
    package = _tree(
        tmp_path,
        {
            "cli.py": f"def run(args, fit, a, b, name):\n    if {condition}:\n"
            "        return 1\n    return 0\n"
        },
    )
    assert _messages(package) == [
        f"bayesmix/cli.py:2: branches on the estimator ({reason}); use the results interface"
    ]


def test_library_import_of_the_paper(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "paper/runs.py": "from bayesmix.model import spec\n",
            "paper/demo.py": "from bayesmix.paper.runs import run\n",
            "model/spec.py": "x = 1\n",
            "cli.py": (
                "import importlib\n\n\ndef commands():\n"
                "    return importlib.import_module('bayesmix.paper.cli')\n"
            ),
            "analysis/mc.py": "from bayesmix import paper\n",
            "plots/fig.py": "def f():\n    from ..paper.runs import run\n    return run\n",
        },
    )
    assert _messages(package) == [
        "bayesmix/analysis/mc.py:1: library module bayesmix.analysis.mc imports bayesmix.paper; "
        "the library must not depend on the paper application",
        "bayesmix/cli.py:5: library module bayesmix.cli imports bayesmix.paper.cli; "
        "the library must not depend on the paper application",
        "bayesmix/plots/fig.py:2: library module bayesmix.plots.fig imports bayesmix.paper.runs; "
        "the library must not depend on the paper application",
    ]


def test_script_exits_one_with_a_line_per_violation(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {"cli.py": "def f(args):\n    return args.estimator == 'ml' or hasattr(args, 'idata')\n"},
    )
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(package)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        "bayesmix/cli.py:2: branches on the estimator (comparison with an attribute named "
        "estimator); use the results interface",
        'bayesmix/cli.py:2: branches on the estimator (hasattr(..., "idata")); '
        "use the results interface",
    ]
