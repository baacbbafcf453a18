# Generative Models, Hands-On. The two commands a newcomer needs:
#   make lab    set up .venv (first time only) and open the course in JupyterLab
#   make test   set up .venv (first time only) and run every test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gmlib-installed
JOBS ?= auto
LESSON ?= 02_vae
SUBMISSIONS ?= autograder/inbox
PYTEST_ARGS ?=
LATEST ?= .venv-latest
UNCAPPED ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps system-deps-grading lab lab-instructor test test-unit test-notebooks test-browser test-latest course check-course grade feedback export bench lint lock clean

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed, found " + sys.version.split()[0] + ": run make with PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev,grading]'
	$(BIN)/python -m ipykernel install --user --name gmlib --display-name "Python 3 (gmlib course)" >/dev/null
	binder/student-mode.sh $(BIN)/jupyter
	touch $(STAMP)

setup: $(STAMP)

system-deps: system-deps-grading  ## what pip cannot install (Debian/Ubuntu apt; skipped when present): Chromium for tests/browser, and the below
	@if [ -n "$$GM_CHROMIUM" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
	    || command -v google-chrome >/dev/null; then echo "Chromium: $${GM_CHROMIUM:-$$(command -v chromium chromium-browser google-chrome | head -1)}"; \
	elif command -v apt-get >/dev/null; then \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; \
	else echo "no apt-get: install Chromium with your package manager, or set GM_CHROMIUM=/path/to/chromium" >&2; exit 1; fi

system-deps-grading:  ## bubblewrap (the grading sandbox) and a PostgreSQL server (gradebook tests); skipped when present
	@missing=""; \
	command -v bwrap >/dev/null && echo "bubblewrap: $$(command -v bwrap)" || missing="$$missing bubblewrap"; \
	pg=$$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | head -1); pg=$${pg:-$$(command -v initdb)}; \
	if [ -n "$$pg" ]; then echo "PostgreSQL: $$pg"; else missing="$$missing postgresql"; fi; \
	if [ -z "$$missing" ]; then true; \
	elif command -v apt-get >/dev/null; then \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq$$missing; \
	else echo "no apt-get: install$$missing with your package manager" >&2; exit 1; fi

lab: setup  ## open the course (student view) in JupyterLab
	$(BIN)/jupyter lab --notebook-dir=course index.ipynb

lab-instructor: setup  ## JupyterLab on the whole repository with nbgrader's instructor tools
	binder/instructor-mode.sh $(BIN)/jupyter
	cd autograder && ../$(BIN)/jupyter lab --notebook-dir=..

test: setup  ## every test: gmlib units, course generation, end-to-end grading, then every notebook (FAST mode)
	@cache=$$(mktemp -d); trap 'rm -rf "$$cache"' EXIT; status=0; \
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 GMLIB_FAST=1 GMLIB_CACHE=$$cache $(BIN)/python -m pytest -n $(JOBS) --dist worksteal \
	    -p no:cacheprovider --durations=25 tests $(PYTEST_ARGS) || status=$$?; \
	OMP_NUM_THREADS=1 GMLIB_FAST=1 GMLIB_CACHE=$$cache $(BIN)/python -m pytest -n $(JOBS) --dist loadfile \
	    --nbval-lax --nbval-current-env -p no:cacheprovider --durations=10 solutions $(PYTEST_ARGS) || status=$$?; \
	exit $$status

test-browser: setup  ## JupyterLab in headless Chromium: lessons run, explorer sliders dragged, Validate (make system-deps first)
	$(BIN)/python -m pytest -p no:cacheprovider tests/browser $(PYTEST_ARGS)

test-latest:  ## drift: every test in a second venv ($(LATEST)) with the newest releases, no lock file (UNCAPPED=1: past pyproject's caps)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed: run make with PYTHON=python3.11")'
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip packaging
ifeq ($(UNCAPPED),)
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev,grading]'
else
	$(LATEST)/bin/python requirements/drift.py uncapped > $(LATEST)/uncapped.txt
	$(LATEST)/bin/python -m pip install --quiet --no-deps -e .
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -r $(LATEST)/uncapped.txt
endif
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/versions.txt
	$(LATEST)/bin/python requirements/drift.py report $(LATEST)/versions.txt
	touch $(LATEST)/.installed
	$(MAKE) --no-print-directory test BIN=$(LATEST)/bin STAMP=$(LATEST)/.installed -o $(LATEST)/.installed

test-unit: setup  ## quick: gmlib unit tests only
	$(BIN)/python -m pytest -n $(JOBS) tests/gmlib $(PYTEST_ARGS)

test-notebooks: setup  ## every solution notebook executes in FAST mode
	@cache=$$(mktemp -d); trap 'rm -rf "$$cache"' EXIT; \
	GMLIB_FAST=1 GMLIB_CACHE=$$cache $(BIN)/python -m pytest -n $(JOBS) --dist loadfile \
	    --nbval-lax --nbval-current-env -p no:cacheprovider solutions $(PYTEST_ARGS)

course: setup  ## regenerate course/ (student notebooks) from solutions/ with nbgrader, and course/index.ipynb
	$(BIN)/python -m autograder generate
	$(BIN)/python -m autograder.index

check-course: setup  ## is course/ exactly what nbgrader generates from solutions/?
	$(BIN)/python -m autograder generate --check
	$(BIN)/python -m autograder.index --check

grade: setup  ## autograde a folder or zip of submissions: make grade LESSON=02_vae SUBMISSIONS=path
	$(BIN)/python -m autograder grade $(LESSON) $(SUBMISSIONS)

feedback: setup
	$(BIN)/python -m autograder feedback $(LESSON)

export: setup
	$(BIN)/python -m autograder export --out autograder/grades.csv

bench: setup  ## lesson budgets (benchmarks/results/) and every family vs baselines (benchmarks/RESULTS.md)
	$(BIN)/python benchmarks/lesson_budget.py
	$(BIN)/python -m autograder.index  # the index shows the measured time of each lesson
	$(BIN)/python benchmarks/run.py

lint: setup
	$(BIN)/ruff check gmlib autograder tests benchmarks

lock: setup  ## refresh requirements/constraints.txt from the current .venv
	{ head -2 requirements/constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^gmlib'; } > requirements/constraints.new
	mv requirements/constraints.new requirements/constraints.txt

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache autograder/work
