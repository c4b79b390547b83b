# smdiff: the two set-up commands are `make test` and `make demo`; both create or reuse .venv.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Re-install only when the package definition changes.
STAMP := $(VENV)/.installed-$(shell cat setup.py | sha1sum | cut -c1-12)
# Two workers for the two CI cores; a file's tests stay on one worker (shared fixtures, jit caches).
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: venv test test-cluster demo lint clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Tests that start cluster services (a one-node SLURM as root, a GCS emulator); not part of `make test`.
test-cluster: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m cluster

demo: venv
	$(BIN)/python -m smdiff.demo

lint: venv
	$(BIN)/shellcheck -x launch/*.sh scripts/cluster/*.sh .ci/run

clean:
	rm -rf $(VENV) .pytest_cache
