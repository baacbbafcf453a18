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

.PHONY: setup system-deps lab lab-instructor test test-unit test-notebooks course check-course grade feedback export bench lint lock clean

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed, found " + sys.version.split()[0] + ": run make with PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev,grading]'
	$(BIN)/python -m ipykernel install --user --name gmlib --display-name "Python 3 (gmlib course)" >/dev/null
	binder/student-mode.sh $(BIN)/jupyter
	touch $(STAMP)

setup: $(STAMP)

system-deps:  ## Debian, as root: the grading sandbox (bubblewrap) and a PostgreSQL server for the gradebook tests
	@missing=""; command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then echo "system packages for grading: already installed"; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; fi

lab: setup  ## open the course (student view) in JupyterLab
	$(BIN)/jupyter lab --notebook-dir=course index.ipynb

lab-instructor: setup  ## JupyterLab on the whole repository with nbgrader's instructor tools
	binder/instructor-mode.sh $(BIN)/jupyter
	cd autograder && ../$(BIN)/jupyter lab --notebook-dir=..

test: setup  ## every test: gmlib units, notebooks (FAST mode), course generation, end-to-end grading
	@cache=$$(mktemp -d); trap 'rm -rf "$$cache"' EXIT; \
	GMLIB_FAST=1 GMLIB_CACHE=$$cache $(BIN)/python -m pytest -n $(JOBS) --dist loadfile \
	    --nbval-lax --nbval-current-env -p no:cacheprovider tests solutions $(PYTEST_ARGS)

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
	rm -rf $(VENV) .pytest_cache autograder/work
