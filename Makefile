# Two entry points: `make demo` and `make test`. Both create .venv when it is missing.
# CPU setups take torch 2.13.0 (a CPU build); for a CUDA build see README.md ("GPU").
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: demo test lint venv bench clean

venv: $(VENV)/.installed

# uv resolves and installs the environment in about a minute where pip takes two and a half; pip is the fallback.
# uv does not read pip's configuration, so the folder pip finds local wheels in (the CPU torch) is passed on.
FIND_LINKS := $(addprefix --find-links ,$(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)))
# uv first installs from its cache alone (--offline): pyspark comes only as a 456 MB source archive, and an index
# that answers every revalidation with a changed archive makes uv download and build it again (30 s of 45) although
# the built wheel is in the cache. Where the cache lacks a package the offline attempt fails at once, changing
# nothing, and the same install runs online.
UV := $(BIN)/uv pip install --python $(BIN)/python --quiet $(FIND_LINKS)
EXTRAS := -e '.[test,spark,steer,large]'

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# setuptools warns about every editable install of a package with a mapped folder (toolkit.sql -> sql/)
	if $(BIN)/python -m pip install --quiet --disable-pip-version-check uv; then \
	  { $(UV) --offline "$(TORCH)" 2>/dev/null || $(UV) "$(TORCH)"; } && \
	  { PYTHONWARNINGS=ignore $(UV) --offline $(EXTRAS) 2>/dev/null || PYTHONWARNINGS=ignore $(UV) $(EXTRAS); }; \
	else \
	  $(BIN)/python -m pip install --quiet "$(TORCH)" && \
	  PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet $(EXTRAS); \
	fi
	touch $@

# Bytecode caches are written (PYTHONDONTWRITEBYTECODE, where a machine sets it, is lifted): the suite starts
# dozens of Python processes, and without caches each one compiles torch's and transformers' sources again
# (importing transformers' models takes 12.7 s instead of 5.8 s on 2 cores).
PYRUN := env -u PYTHONDONTWRITEBYTECODE

demo: venv
	$(PYRUN) $(BIN)/neurons demo

test: venv
	$(PYRUN) $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/python -m ruff check toolkit tests benchmarks
	$(BIN)/python -m ruff format --check toolkit tests benchmarks

bench: venv
	for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PYRUN) $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) warehouse/*.duckdb warehouse/*.wal warehouse/demo-model
