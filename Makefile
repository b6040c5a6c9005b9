# groot_kit: two commands do everything on a fresh machine.
#   make lab    set up (.venv, Python 3.12) and open JupyterLab on notebooks/
#   make test   set up and run every test (unit, notebooks in fast mode, browser UI)
# Also: make tour (every notebook headless, fast mode), make book (the notebooks, executed in fast
# mode, as a static offline HTML site in outputs/book/), make bench (benchmark scripts).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.groot_kit_installed

# Find a Python 3.12 on our own: PATH, pyenv's versions, the usual prefixes.
PYTHON312 ?= $(shell for c in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12 /opt/conda/bin/python3.12; do \
	  p=$$(command -v $$c 2>/dev/null) || continue; \
	  $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo $$p; break; }; done)

export HF_HUB_OFFLINE ?= 1
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup sysdeps lab tour book test test-unit bench clean strip-notebooks

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON312)" ]; then echo "No Python 3.12 found. Install one (pyenv install 3.12, apt, or conda) or run: make PYTHON312=/path/to/python3.12"; exit 1; fi
	@test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[notebooks,test]'
	@touch $(STAMP)

setup: sysdeps $(STAMP)

sysdeps:
	@bash scripts/install_system_deps.sh

# jupyter_config/ adds (does not replace) a lab config: the news pop-up (announcements) is off.
# Notebooks resolve data_samples/ and outputs/ from the repo root, so the folder Lab starts in does
# not matter. Root (containers) needs --allow-root; a user does not.
LAB_FLAGS := --notebook-dir=notebooks --ip=127.0.0.1 --LabApp.news_url=None \
	--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter_config $(VENV)/bin/jupyter lab $(LAB_FLAGS)

tour: setup
	GROOT_KIT_FAST=1 $(PY) -m groot_kit.tour

# Static PNGs of the plots come from kaleido driving Debian's chromium (sysdeps installs it).
book: setup
	GROOT_KIT_FAST=1 $(PY) -m groot_kit.book

# pytest exit code 5 (nothing collected) must fail, not pass silently. -v: the log names each test as
# it starts. --session-timeout: no new test starts after 60 min (an idle 2-core machine needs about
# 13), so a slow machine ends with a report (exit 2) inside CI's 90 min, not cut off mid-run.
test: setup
	@set +e; GROOT_KIT_FAST=1 $(PY) -m pytest -n 2 --dist loadgroup -v --durations=25 --session-timeout=3600 tests $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests"; exit 1; fi; exit $$rc

test-unit: setup
	@set +e; $(PY) -m pytest -n 2 -m "not slow" tests $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 1; exit $$rc

bench: setup
	$(PY) benchmarks/latency.py
	$(PY) benchmarks/datagen.py
	$(PY) benchmarks/deploy.py
	$(PY) benchmarks/server_load.py

strip-notebooks: setup
	$(PY) -m groot_kit.notebooks strip

clean:
	rm -rf $(VENV) outputs .pytest_cache
