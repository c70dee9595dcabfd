"""The on-disk cache of nutpie's compiled models: keys, concurrent writes, reuse by a
second process, damaged entries, and ``bayesmix cache``."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.bayes import compiled_store
from bayesmix.bayes.fit import prepare
from bayesmix.bayes.model import sampling_model
from bayesmix.cache.folders import CACHE_VARIABLE, cache_folder, write_atomic
from bayesmix.cli import main
from bayesmix.paper.section2 import CONVENTIONAL_PARAMS, FIG3_PARAMS
from tests.support.paths import MODELS

REPO = Path(__file__).resolve().parents[2]


def _key(model_name: str, params: dict, clusters: int, seed: int) -> str:
    spec = bm.load_spec(MODELS / f"{model_name}.toml")
    data = bm.simulate(spec, params, clusters=clusters, cluster_size=10, random_seed=seed)
    _, internal, _, priors = prepare(spec, data, None, "error")
    model = sampling_model(internal, priors, None, shared_outcome=True)
    return compiled_store.structure_key(model, "numba")


def test_keys_follow_structure_and_shapes_not_data_values():
    fig3 = _key("fig3", FIG3_PARAMS, 30, seed=1)
    # other data of the same shapes: the same compiled code serves them
    assert _key("fig3", FIG3_PARAMS, 30, seed=2) == fig3
    # another model structure, or other shapes, or another compiler: another key
    assert _key("conventional", CONVENTIONAL_PARAMS, 30, seed=1) != fig3
    assert _key("fig3", FIG3_PARAMS, 31, seed=1) != fig3
    spec = bm.load_spec(MODELS / "fig3.toml")
    data = bm.simulate(spec, FIG3_PARAMS, clusters=30, cluster_size=10, random_seed=1)
    _, internal, _, priors = prepare(spec, data, None, "error")
    model = sampling_model(internal, priors, None, shared_outcome=True)
    assert compiled_store.structure_key(model, "jax") != fig3
    # the priors are constants of the compiled code: another prior, another key
    wider = {**priors, "sigma": bm.Prior("half_student_t", 0.0, 2.0, 3.0)}
    other = sampling_model(internal, wider, None, shared_outcome=True)
    assert compiled_store.structure_key(other, "numba") != fig3


def _writer(path: str, fill: int, rounds: int) -> None:
    payload = bytes([fill]) * 3_000_000
    for _ in range(rounds):
        assert write_atomic(Path(path), payload)


def test_two_processes_writing_one_entry_both_succeed(tmp_path):
    path = tmp_path / "entry.pkl"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(str(path), fill, 40)) for fill in (1, 2)]
    for w in writers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in writers):
        if path.exists():
            content = path.read_bytes()
            # a reader sees one writer's whole entry, never a mixture or a part
            assert content in (b"\x01" * 3_000_000, b"\x02" * 3_000_000)
            reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert path.read_bytes()[0] in (1, 2)
    # no temporary file is left behind
    assert [p.name for p in tmp_path.iterdir()] == ["entry.pkl"]


def test_damaged_entry_is_a_miss(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    folder = cache_folder("nutpie")
    key = "0" * 64
    (folder / f"{key}.pkl").write_bytes(b"not a stored model")
    assert compiled_store.load_code(key) is None
    (folder / f"{key}.pkl").write_bytes(b"")
    assert compiled_store.load_code(key) is None


def test_cache_command_shows_and_clears(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    (cache_folder("nutpie") / "a.pkl").write_bytes(b"x" * 2048)
    (cache_folder("jax") / "b").write_bytes(b"y" * 1024)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out
    assert "nutpie        1 entries" in out and "jax           1 entries" in out
    assert "exported      0 entries" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert not (tmp_path / "nutpie").exists() and not (tmp_path / "jax").exists()


_FIT = textwrap.dedent(
    """
    import json, sys
    import nutpie
    import bayesmix as bm
    from bayesmix.paper.section2 import CONVENTIONAL_PARAMS
    compilations = []
    compile_pymc_model = nutpie.compile_pymc_model
    def counted(*args, **kwargs):
        compilations.append(1)
        return compile_pymc_model(*args, **kwargs)
    nutpie.compile_pymc_model = counted
    spec = bm.load_spec(sys.argv[1])
    data = bm.simulate(spec, CONVENTIONAL_PARAMS, clusters=20,
                       cluster_size=10, random_seed=int(sys.argv[2]))
    fit = bm.fit_bayes(spec, data, draws=60, tune=60, chains=2, random_seed=5,
                       backend="numba", ml_starts=1)
    means = fit.table["mean"].tolist()
    print(json.dumps({"compilations": len(compilations), "means": means}))
    """
)


def _start(script: Path, seed: int, cache: Path) -> subprocess.Popen:
    env = {**os.environ, CACHE_VARIABLE: str(cache)}
    return subprocess.Popen(
        [sys.executable, str(script), str(MODELS / "conventional.toml"), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.long
def test_second_process_loads_compiled_model(tmp_path):
    """Four processes, two of them compiling at once with empty caches: minutes on a new
    machine, so under make test-long."""
    script = tmp_path / "fit.py"
    script.write_text(_FIT)
    cache = tmp_path / "cache"
    # two processes compile the same structure at once and both write the entry
    first = [_result(p) for p in [_start(script, 1, cache), _start(script, 1, cache)]]
    assert [r["compilations"] for r in first] == [1, 1]
    assert first[0]["means"] == first[1]["means"]
    assert len(list((cache / "nutpie").glob("*.pkl"))) == 1
    # a third loads the code: no compilation, and the same seed gives the same draws
    again = _result(_start(script, 1, cache))
    assert again["compilations"] == 0
    assert again["means"] == first[0]["means"]
    # other data of the same shapes run on the same code, with their own values
    other = _result(_start(script, 2, cache))
    assert other["compilations"] == 0
    assert not np.allclose(other["means"], first[0]["means"])
    assert len(list((cache / "nutpie").glob("*.pkl"))) == 1


def test_ml_objective_is_exported_once_and_loaded(tmp_path, monkeypatch):
    from bayesmix.density import compiled

    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    spec = bm.load_spec(MODELS / "fig3.toml")
    data = bm.simulate(spec, FIG3_PARAMS, clusters=30, cluster_size=10, random_seed=1)
    compiled._quadrature_functions.cache_clear()
    first = bm.fit_ml(spec, data, starts=2, random_seed=1)
    stored = sorted(p.name for p in (tmp_path / "exported").iterdir())
    # the three functions for each shape of the data's chunks
    assert stored and len(stored) % len(compiled.QUADRATURE_OUTPUTS) == 0
    # what a new process does: load the exports, without pytensor building the graphs
    compiled._quadrature_functions.cache_clear()
    monkeypatch.setattr(
        compiled, "_quadrature_graph", lambda *a: pytest.fail("the graph was built again")
    )
    again = bm.fit_ml(spec, data, starts=2, random_seed=1)
    assert again.loglik == first.loglik
    assert np.array_equal(again.params["estimate"], first.params["estimate"])
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == stored
    compiled._quadrature_functions.cache_clear()
