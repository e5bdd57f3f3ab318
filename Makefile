# Two entry points: `make demo` and `make test`. Both create .venv when it is missing.
# CPU setups take torch 2.13.0 (a CPU build); for a CUDA build see README.md ("GPU").
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: demo test lint venv bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	# setuptools warns about every editable install of a package with a mapped folder (toolkit.sql -> sql/)
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e '.[test,spark]'
	touch $@

demo: venv
	$(BIN)/neurons demo

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/python -m ruff check toolkit tests benchmarks
	$(BIN)/python -m ruff format --check toolkit tests benchmarks

bench: venv
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) warehouse/*.duckdb warehouse/*.wal warehouse/demo-model
