# make test  - create .venv, install the package and its pinned requirements, run all tests
# make demo  - run the main job on the embedded data (no download needed)
# make bench - time the project against the original recipe -> table + output/bench/results.json
# make notebooks - run every notebook (notebook preset) to HTML under output/notebooks/, with times
# make figures - README's figures from the shipped models
# make app   - the restorer app (sliders, a shipped model, scores) as a local web page: http://127.0.0.1:8866
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch's CPU threads spin less while they wait for each other: a busy machine then slows a run down in
# proportion, not many times over (see medgan_nb/__init__.py). Exported, so test and notebook processes get it.
export GOMP_SPINCOUNT ?= 10000

.PHONY: test demo bench bench-quality figures notebooks app install clean-venv

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Unit tests on both cores (pytest-xdist, one torch thread per worker), then the notebooks under nbval in tiny
# mode, one at a time (each cell must run).
test: $(STAMP)
	MEDGAN_TINY=1 $(PY) -m pytest -q -n 2 tests
	MEDGAN_TINY=1 $(PY) -m pytest -q --nbval-lax --nbval-current-env notebooks

demo: $(STAMP)
	$(PY) -m medgan_nb demo

bench: $(STAMP)
	$(PY) -m benchmarks

# Lite vs seed-architecture generator after equal training time (2 × 6 min + evaluation on 2 CPU cores).
bench-quality: $(STAMP)
	$(PY) -m benchmarks quality --minutes 6

# README's figures from the shipped models and their cards (docs/hero.png, docs/grid-<model>.png).
figures: $(STAMP)
	$(PY) scripts/make_figures.py

# Every notebook, executed in its default (notebook) preset, to HTML under output/notebooks/ (not committed).
notebooks: $(STAMP)
	$(PY) scripts/run_notebooks.py --out output/notebooks

# The restorer app (app/restorer.ipynb: medgan_nb/figures/app.py) served by Voilà on this machine only, offline,
# without opening a browser: open http://127.0.0.1:$(APP_PORT) yourself; Ctrl-C stops it.
APP_PORT ?= 8866
app: $(STAMP)
	$(VENV)/bin/voila app/restorer.ipynb --no-browser --port=$(APP_PORT) --Voila.ip=127.0.0.1

clean-venv:
	rm -rf $(VENV)
