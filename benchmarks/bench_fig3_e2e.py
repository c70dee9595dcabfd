"""fig3_e2e: Fig 3 by NUTS end to end, from the command to the result, against the plain model.

Each data seed (default 1 and 2; the baseline does not mix on seeds 3-5) is written to a CSV
file, then fitted in fresh processes:

* ``bayesmix fit models/fig3.toml --data FILE --estimator bayes --seed S --json OUT``, timed
  as a whole process: import, reading the data, the ML start, compiling (or loading the
  compiled model), 4 chains x (1000 + 1000), the posterior's post-processing and the JSON;
* the plain PyMC + nutpie model of ``bench_fig3_bayes.py`` (``run_baseline``, unchanged) in a
  fresh process, its wall counted as its compile plus its sampling (its import and reading
  the data left out, which favours it).

The figure is the minimum bulk ESS over the 11 paper parameters per second of that wall.
Warm: the compile caches hold the model (a first run fills them). ``--cold`` adds a first
run of each with empty caches (bayesmix's and pytensor's, in temporary folders).
Target: warm, at least 2x the baseline's figure on each seed, and ``compile_s`` at most 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

ROOT = Path(__file__).resolve().parent.parent
BAYESMIX = Path(sys.executable).parent / "bayesmix"

_BASELINE = """
import json, sys, time
sys.path.insert(0, {bench!r})
import pandas as pd
from bench_fig3_bayes import run_baseline
data = pd.read_csv(sys.argv[1])
print(json.dumps(run_baseline(data, int(sys.argv[2]))))
"""


def _write_data(folder: Path, seed: int) -> Path:
    import bayesmix as bm
    from bayesmix.paper.section2 import FIG3_PARAMS

    spec = bm.load_spec(ROOT / "models" / "fig3.toml")
    data = bm.simulate(spec, FIG3_PARAMS, clusters=200, cluster_size=15, random_seed=seed)
    path = folder / f"fig3_seed{seed}.csv"
    data.to_csv(path, index=False)
    return path


def _ours(data: Path, seed: int, out: Path, env: dict[str, str]) -> dict[str, float]:
    command = [str(BAYESMIX), "fit", str(ROOT / "models" / "fig3.toml"), "--data", str(data)]
    command += ["--estimator", "bayes", "--seed", str(seed), "--json", str(out), "--quiet"]
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    result = json.loads(out.read_text())
    return {
        "wall_s": round(wall, 2),
        "compile_s": round(result["compile_s"], 2),
        "sampling_s": round(result["sampling_s"], 2),
        "elapsed_s": round(result["elapsed_s"], 2),
        "ess_bulk_min": round(result["ess_bulk_min"], 1),
        "rhat_max": round(result["rhat_max"], 4),
        "divergences": result["divergences"],
        "label_switching": result["label_switching"],
        "min_ess_per_s": round(result["ess_bulk_min"] / wall, 2),
    }


def _baseline(data: Path, seed: int, env: dict[str, str]) -> dict[str, float]:
    script = _BASELINE.format(bench=str(Path(__file__).parent))
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, str(data), str(seed)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    process = time.perf_counter() - t0
    result = json.loads(done.stdout.strip().splitlines()[-1])
    wall = result["compile_s"] + result["sampling_s"]
    return {
        **result,
        "wall_s": round(wall, 2),
        "process_s": round(process, 2),
        "min_ess_per_s": round(result["ess_bulk_min"] / wall, 2),
    }


def _case(label: str, seed: int, ours: dict, base: dict, target: bool) -> None:
    ratio = ours["min_ess_per_s"] / base["min_ess_per_s"]
    fields = {
        "data_seed": seed,
        "draws": 1000,
        "tune": 1000,
        "chains": 4,
        **{f"ours_{k}": v for k, v in ours.items()},
        **{f"baseline_{k}": v for k, v in base.items()},
        "ratio": round(ratio, 2),
    }
    if target:
        fields |= {"target_ratio": 2.0, "target_compile_s": 1.0}
        fields["met"] = bool(ratio >= 2.0 and ours["compile_s"] <= 1.0)
    emit(label, **fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--cold", action="store_true", help="also time a first run, caches empty")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seed in args.seeds:
            data = _write_data(folder, seed)
            out = folder / f"fit{seed}.json"
            if args.cold:
                cold = {
                    **os.environ,
                    "BAYESMIX_CACHE": str(folder / f"cache{seed}"),
                    "PYTENSOR_FLAGS": f"base_compiledir={folder / f'pytensor{seed}'}",
                }
                ours = _ours(data, seed, out, cold)
                _case("fig3_e2e_cold", seed, ours, _baseline(data, seed, cold), target=False)
            env = dict(os.environ)
            _ours(data, seed, out, env)  # fills the caches when they are empty
            _baseline(data, seed, env)
            ours = _ours(data, seed, out, env)
            _case("fig3_e2e", seed, ours, _baseline(data, seed, env), target=True)


if __name__ == "__main__":
    main()
