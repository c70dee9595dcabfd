"""Start-up: `import bayesmix`, the CLI's --help and an ML fit load only what they use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bayesmix

HEAVY = ("pymc", "jax", "numba", "nutpie", "arviz_stats", "matplotlib")


def _loaded_after(code: str) -> list[str]:
    """Which of :data:`HEAVY` a fresh interpreter has imported after running ``code``."""
    report = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    probe = f"{code}\nimport json, sys\n{report}"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_bayesmix_loads_no_sampler_compiler_or_plotting_library():
    assert _loaded_after("import bayesmix") == []


def test_the_cli_and_its_help_load_none_of_them():
    assert _loaded_after("from bayesmix.cli import _parser\n_parser()") == []


def test_a_one_class_ml_fit_loads_no_compiler_or_sampler():
    code = (
        "import bayesmix as bm\n"
        "spec = bm.load_spec(bm.model_file('hsb_1'))\n"
        "fit = bm.fit_ml(spec, 'hsb')\n"
        "assert abs(fit.loglik + 23214.496) < 1e-3, fit.loglik\n"
        "print(fit.summary())"
    )
    assert _loaded_after(code) == []
    # formulaic (and the scipy.sparse it loads) only for formulas that need it
    heavy = "import sys\nassert not {'pytensor', 'scipy.stats', 'formulaic'} & set(sys.modules)"
    assert _loaded_after(f"{code}\n{heavy}") == []


def test_every_public_name_resolves_and_is_listed():
    names = set(bayesmix.__all__)
    assert names <= set(dir(bayesmix))
    for name in sorted(names):
        assert getattr(bayesmix, name) is not None, name
    from bayesmix import fit_bayes, load_spec

    assert fit_bayes.__module__ == "bayesmix.bayes.fit"
    assert load_spec.__module__ == "bayesmix.model.build"
    with pytest.raises(AttributeError, match="no attribute 'fit_mcmc'"):
        bayesmix.fit_mcmc  # noqa: B018
