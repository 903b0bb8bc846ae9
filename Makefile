# Two commands set everything up on a fresh machine:
#   make demo   - create .venv, install tflkit, run `tflkit demo` (no network needed)
#   make test   - create .venv, install tflkit with test extras, run the test suite
#   make lint   - ruff (lint rules in pyproject.toml) and import-linter (the import layers in pyproject.toml)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact versions the tests passed with (a pip constraints file); `make install LOCK=` installs from the ranges.
LOCK ?= requirements.lock
DEMO_OUT ?= runs/demo

.PHONY: install demo test test-all lint lock bench clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(LOCK),-c $(LOCK)) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tflkit demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# After a deliberate upgrade that passed `make test`: write the installed versions back to the lock.
lock: $(STAMP)
	{ sed -n '1,2p' requirements.lock; $(BIN)/pip freeze --exclude-editable; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

clean:
	rm -rf $(VENV) runs .pytest_cache
