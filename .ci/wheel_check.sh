#!/usr/bin/env bash
# The installed package, not the checkout: a wheel built from this checkout is installed with
# its dependencies into a clean virtual environment outside it, and from another folder, in
# isolated mode (python -I: neither the current folder nor PYTHONPATH is on sys.path), imports
# bayesmix from that environment, runs `bayesmix paper --quick` and a two-replication Section 2.2
# recovery study, and checks what they wrote.
#
# Usage: .ci/wheel_check.sh PYTHON3.12   (make wheel-check passes the Makefile's PYTHON_BOOT)
# The wheel is built by the project environment's .venv/bin/python (make venv), or by
# $BUILD_PYTHON where that is set.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
boot="${1:-}"
if [ -z "$boot" ] || ! "$boot" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
  echo "wheel_check: give a Python 3.12 interpreter as the first argument (got '${boot}')" >&2
  exit 2
fi
build_py="${BUILD_PYTHON:-$root/.venv/bin/python}"
[ -x "$build_py" ] || { echo "wheel_check: $build_py missing; run make venv" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/bayesmix-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
step() { printf '[wheel-check %4ds] %s\n' $((SECONDS - start)) "$*"; }

# Build from a copy of the checkout's files (tracked and new, not ignored), so no stale build/
# folder can slip files into the wheel and the build leaves nothing behind in the checkout.
step "copying the checkout"
mkdir "$work/src"
(
  cd "$root"
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do
        if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi  # skip deleted files
      done \
    | tar --null --no-recursion -T - -cf -
) | tar -xf - -C "$work/src"
step "building the wheel"
"$build_py" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$work/src"
wheel=("$work"/dist/bayesmix-*.whl)
[ "${#wheel[@]}" -eq 1 ] && [ -f "${wheel[0]}" ] || { echo "wheel_check: no wheel built" >&2; exit 1; }
step "built $(basename "${wheel[0]}")"

step "creating a clean environment with $("$boot" -V)"
"$boot" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check "${wheel[0]}"
step "installed"

mkdir "$work/elsewhere"
cd "$work/elsewhere"

"$py" -I - "$work/venv" <<'EOF'
import sys
from pathlib import Path

import bayesmix as bm

venv = Path(sys.argv[1]).resolve()
where = Path(bm.__file__).resolve()
assert where.is_relative_to(venv), f"bayesmix imported from {where}, not from {venv}"
names = bm.model_names()
assert len(names) == 9 and {"fig1", "fig3", "conventional", "hsb_C"} <= set(names), names
for name in names:
    path = bm.model_file(name)
    assert path.resolve().is_relative_to(venv), f"{name} read from {path}"
    assert bm.load_spec(path).name == name
print(f"bayesmix {bm.__version__} imported from {where.parent}; models: {', '.join(names)}")
EOF
"$work/venv/bin/bayesmix" --help > /dev/null  # the console script

step "bayesmix paper --quick"
"$py" -I -m bayesmix paper --quick --out paper
for f in report.md table1.csv table2.csv fig5.png fig6.png fig8.png; do
  [ -s "paper/$f" ] || { echo "wheel_check: paper/$f missing or empty" >&2; exit 1; }
done

step "bayesmix montecarlo section2 --study recovery --replications 2"
"$py" -I -m bayesmix montecarlo section2 --study recovery --replications 2 --out recovery.jsonl
"$py" -I - recovery.jsonl <<'EOF'
import json
import sys

lines = [json.loads(ln) for ln in open(sys.argv[1], encoding="utf-8") if ln.strip()]
assert "study" in lines[0], lines[0]
reps = sorted(r["replication"] for r in lines[1:])
assert reps == [0, 1], reps
assert all(r["ok"] for r in lines[1:]), [r for r in lines[1:] if not r["ok"]]
print(f"recovery.jsonl: header and replications {reps}, all fitted")
EOF

step "passed"
