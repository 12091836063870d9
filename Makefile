# Two commands a learner needs: `make lab` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test stop status verify bench exercises clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required, found " + sys.version.split()[0])'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

## make lab: Redis + the four services up, sample data loaded, JupyterLab (rooted at the project) on notebook 00
lab: $(STAMP)
	$(BIN)/labkit lab

## make test: the whole suite (unit, integration, notebooks, exercises) on its own ports
test: $(STAMP)
	$(BIN)/python -m pytest

## make stop: stop everything `make lab` started: JupyterLab, the services, Redis
stop: $(STAMP)
	$(BIN)/labkit stop-all

status: $(STAMP)
	$(BIN)/labkit status

verify: $(STAMP)
	$(BIN)/labkit verify

bench: $(STAMP)
	$(BIN)/labkit bench

exercises: $(STAMP)
	$(BIN)/labkit exercises build

clean:
	-$(BIN)/labkit stop-all
	rm -rf .lab .lab-* .pytest_cache
