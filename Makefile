# Two commands a learner needs: `make lab` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test test-pythons stop status verify bench exercises clean

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

## make test-pythons: tests/unit and tests/integration on each Python of PYTHONS found on this machine
## (on PATH as python3.X, or under ~/.pyenv), each in its own .venv-3.X; absent ones are skipped, and said so.
## Not part of `make test`: it builds a venv per Python the first time (a minute or two each).
PYTHONS ?= 3.11 3.12 3.13
test-pythons:
	@status=0; for v in $(PYTHONS); do \
	  py=; for c in $$(command -v python$$v) $$(ls -d $$HOME/.pyenv/versions/$$v.*/bin/python 2>/dev/null | sort -rV); do \
	    if [ "$$($$c -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = $$v ]; then py=$$c; break; fi; \
	  done; \
	  if [ -z "$$py" ]; then echo "== Python $$v: not found on this machine, skipped"; continue; fi; \
	  venv=.venv-$$v; echo "== Python $$v: $$py, in $$venv"; \
	  test -x $$venv/bin/python || $$py -m venv $$venv || exit 1; \
	  if [ ! -f $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ]; then \
	    $$venv/bin/python -m pip install --quiet -e . && touch $$venv/.installed || exit 1; fi; \
	  $$venv/bin/python -m pytest tests/unit tests/integration -q || status=1; \
	done; exit $$status

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
