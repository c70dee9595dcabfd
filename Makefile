# bayesmix: `make test` and `make demo` set everything up on first use.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Python 3.12: the pyenv interpreter named in .python-version, else python3.12 on PATH.
PYTHON_BOOT ?= $(shell v=$$(cat .python-version 2>/dev/null); \
	for c in "$$HOME/.pyenv/versions/$$v/bin/python" "$$(command -v python3.12)" \
	         "$$(pyenv which python 2>/dev/null)"; do \
	  if [ -x "$$c" ] && "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then \
	    echo "$$c"; break; fi; done)

.PHONY: venv test test-long test-fast notebooks wheel-check demo bench sbc blrt lint docs clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON_BOOT)" ]; then \
	  echo "error: Python 3.12 not found; install it (pyenv install 3.12) or set PYTHON_BOOT=/path/to/python3.12"; \
	  exit 1; fi
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Two workers, one test file each at a time: a file's fixtures are made once, in its worker.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

# The long NUTS runs against a reference (model C, HSB model 1 and Fig 3 against ML, PyMC's
# sampler against nutpie, forward draws against NUTS), outside the developer's loop.
test-long: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m long

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Executes every notebook with small draws (BAYESMIX_NOTEBOOK_DRAWS=150); the committed
# outputs come from full runs.
notebooks: $(STAMP)
	$(PY) -m pytest -q -m notebook tests/test_notebooks.py

# A wheel of this checkout, installed into a clean environment outside it, runs
# `bayesmix paper --quick` and a two-replication Monte Carlo study from another folder.
wheel-check: $(STAMP)
	@if [ -z "$(PYTHON_BOOT)" ]; then \
	  echo "error: Python 3.12 not found; install it (pyenv install 3.12) or set PYTHON_BOOT=/path/to/python3.12"; \
	  exit 1; fi
	.ci/wheel_check.sh "$(PYTHON_BOOT)"

demo: $(STAMP)
	$(VENV)/bin/bayesmix paper --out bayesmix-output

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

# Simulation-based calibration of NUTS on four paper models and a negative control,
# 100 simulations each; resumes from sbc-output/ after an interruption.
sbc: $(STAMP)
	$(PY) benchmarks/sbc.py $(SBC_SIMULATIONS)

# The bootstrap likelihood-ratio test's power (20 Fig 1 data sets x 99 bootstraps), size
# (100 one-class data sets x 19) and a Fig 3 case (200 schools x 15, 99 bootstraps), one JSON
# line each; resumes from blrt-output/. BLRT_ARGS="--power 5 --size 20" runs fewer.
blrt: $(STAMP)
	$(PY) benchmarks/blrt.py $(BLRT_ARGS)

# Style (ruff), then the package's shape: sizes, import cycles, the library's
# independence of the paper, no estimator branches outside results/.
lint: $(STAMP)
	$(VENV)/bin/ruff check bayesmix tests benchmarks scripts
	$(VENV)/bin/ruff format --check bayesmix tests benchmarks scripts
	$(PY) scripts/check_structure.py

# The documentation site in site/, then every page of it in headless Chromium. Installs the
# docs extra into .venv when mkdocs is missing there, and Debian's Graphviz (the path
# diagrams), MathJax (copied into docs/assets/mathjax/, so the site needs no network) and
# Chromium when missing.
MATHJAX_SRC := /usr/share/javascript/mathjax
MATHJAX_DST := docs/assets/mathjax
MATHJAX_FILES := MathJax.js config/TeX-AMS_CHTML.js extensions jax/input/TeX \
	jax/output/CommonHTML jax/element fonts/HTML-CSS/TeX/woff fonts/HTML-CSS/TeX/otf
APT_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

docs: $(STAMP)
	@test -x $(VENV)/bin/mkdocs || $(PY) -m pip install --quiet -e ".[docs]"
	@command -v dot >/dev/null || { $(APT_INSTALL) graphviz; }
	@test -f $(MATHJAX_SRC)/MathJax.js || { $(APT_INSTALL) libjs-mathjax; }
	@{ command -v chromium && command -v chromedriver; } >/dev/null || \
	  { $(APT_INSTALL) chromium chromium-driver; }
	rm -rf $(MATHJAX_DST) && mkdir -p $(MATHJAX_DST)
	cd $(MATHJAX_SRC) && cp -r --parents $(MATHJAX_FILES) $(CURDIR)/$(MATHJAX_DST)/
	$(PY) docs/gen_diagrams.py
	$(VENV)/bin/mkdocs build --strict --site-dir site
	$(PY) -m pytest -q -m docs tests/test_docs_site.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bayesmix-output sbc-output blrt-output
	rm -rf site $(MATHJAX_DST) docs/gallery/diagrams
