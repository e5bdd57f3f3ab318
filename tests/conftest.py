"""Shared fixtures: tiny checkpoints built offline and saved like a user's, and small data files."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

# The suite runs in six workers (pytest-xdist), most of them often waiting on a subprocess: one thread each for
# torch and every process it starts, so that the workers do not oversubscribe the cores (set before torch is imported).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import polars as pl  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from toolkit.capture.tinymodels import build_model, save_checkpoint, train_tokenizer  # noqa: E402
from toolkit.cli import cli  # noqa: E402


@pytest.fixture(scope="session")
def sample() -> pl.DataFrame:
    from toolkit.cli.demo import sample_path  # imports torch: not at the top, which the controller reads too

    return pl.read_csv(sample_path())


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, sample):
    """checkpoint(architecture, classifier=True) -> directory of a tiny saved model (cached per session)."""
    from toolkit.cli.demo import LABELS

    cache: dict[tuple[str, bool], Path] = {}

    def make(architecture: str = "xlm-roberta", classifier: bool = True) -> Path:
        key = (architecture, classifier)
        if key not in cache:
            tok = train_tokenizer(sample["text"].to_list(), architecture, vocab_size=600, max_length=64)
            model = build_model(
                architecture, tok, LABELS if classifier else None, seed=1, hidden=32, layers=3, heads=2, max_length=64
            )
            out = tmp_path_factory.mktemp(f"{architecture}-{'cls' if classifier else 'bare'}")
            cache[key] = save_checkpoint(model, tok, out)
        return cache[key]

    return make


@pytest.fixture
def data_csv(tmp_path, sample) -> Path:
    """The bundled sample as a user's CSV file."""
    path = tmp_path / "data.csv"
    sample.write_csv(path)
    return path


def neurons_command(db: Path, *args) -> list[str]:
    """The command line of `neurons --db DB ARGS...` run as a separate process (python -m toolkit)."""
    return [sys.executable, "-m", "toolkit", "--db", str(db), *(str(a) for a in args)]


def digest(path: Path) -> str | None:
    """sha256 of a file, or None when it does not exist."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture
def neurons():
    """neurons(*args, input=None) -> click Result, stderr kept apart."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict | None = None):
        return runner.invoke(cli, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return invoke


def assert_report_figures_valid(db: Path, run: str) -> set[str]:
    """Every figure the report of RUN draws is valid Vega-Lite (the report writes its specs unvalidated, so this is
    where they are checked); returns the views the figures read."""
    from toolkit.defaults import THRESHOLD
    from toolkit.figures.report import _figures
    from toolkit.stats.analysis import resolve
    from toolkit.store.warehouse import Warehouse

    with Warehouse(db, read_only=True) as wh:
        figures = _figures(wh, run, resolve(wh, run, None).layer, THRESHOLD, False)
    for f in figures:
        f.chart.to_dict()  # validates against the schema: raises on a spec outside it
    return {f.view for f in figures}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render_in_chromium(index, tmp_path, fragment: str = "") -> str:
    """The page's DOM after headless Chromium loaded it from disk (at #FRAGMENT) and ran its scripts."""
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / ('profile' + fragment.replace(':', '-').replace('=', '-'))}",
            "--virtual-time-budget=60000",
            "--dump-dom",
            index.as_uri() + (f"#{fragment}" if fragment else ""),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout


def assert_one_line_error(result, *fragments: str) -> None:
    """A non-zero exit with exactly one line on stderr that contains every FRAGMENT, and no traceback."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("neurons: "), lines[0]
    assert "Traceback" not in result.output + result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


SLOWEST_FIRST = (
    "test_spark.py",  # the longest: one Spark session runs every statistic's query in turn (about 80 s alone)
    "test_hardening.py",
    "test_resume.py",
    "test_decoders.py",
    "test_lake.py",
    "test_figures.py",
    "test_demo.py",
    "test_causal.py",
)
"""Files whose tests take longest, handed to the workers first (xdist's own reordering by test count is off:
`--no-loadscope-reorder`), so that none is left running alone at the end."""

BEHIND_SPARK = 5
"""Niceness every worker takes at its first test outside test_spark.py. The Spark file is the suite's critical path:
its queries run one after another, so at an equal share of two cores among six workers it would end last, long
after the rest; at a lower priority for the others (their subprocesses inherit it) it gets about a core of its own."""


def pytest_configure(config):
    """In the controller of a parallel run, import once every module the workers will: a fresh venv has no bytecode
    caches, and six workers starting at once would each compile torch's, transformers' and the toolkit's sources
    (with the caches this writes, a fresh clone's suite takes about 40 CPU-seconds less). The work is split in two
    processes, one per core: a helper imports torch, the tiny models' transformers classes and the toolkit's modules
    that import torch, while the controller imports the rest (scipy, scikit-learn, altair, DuckDB, ...). Skipped
    where the caches are there already (`_compiled`)."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not getattr(config.option, "numprocesses", None) or _compiled():
        return
    import pkgutil
    import subprocess

    import toolkit
    from toolkit.capture.tinymodels import ARCHITECTURES, DECODERS, MORE_DECODERS

    modules = [m.name for m in pkgutil.walk_packages(toolkit.__path__, "toolkit.") if not m.name.endswith("__main__")]
    with_torch = ("toolkit.capture.", "toolkit.causal.", "toolkit.cli.")  # the CLI's modules reach torch too
    helper = ["torch", "transformers"]
    helper += [f"transformers.models.{a}.modeling_{a}" for a in (x.replace("-", "_") for x in ARCHITECTURES + DECODERS)]
    helper += [m for m in modules if m.startswith(with_torch)]
    helper += [f"transformers.models.{a}.modeling_{a}" for a in MORE_DECODERS]
    rest = ["scipy.stats", "sklearn.linear_model", "altair", "polars", "duckdb", "pyarrow.dataset", "deltalake"]
    rest += [m for m in modules if not m.startswith(with_torch)]
    with subprocess.Popen([sys.executable, __file__, *helper]):  # runs _import_each(helper); waited for on leaving
        _import_each(rest)


COMPILED_LAST = (
    ("torch", "__init__.py"),
    ("scipy", "stats", "_stats_py.py"),
    ("transformers", "modeling_utils.py"),
    ("transformers", "models", "gpt_neox", "modeling_gpt_neox.py"),  # the helper's last import
    ("toolkit", "cli", "demo.py"),
    ("toolkit", "store", "warehouse.py"),
)
"""Modules whose bytecode caches say that a warm-up ran to its end: with all of them present it is skipped (it
takes 8 s of wall time even when there is nothing left to compile)."""


def _compiled() -> bool:
    """Whether every module of COMPILED_LAST has its bytecode cache (looked up without importing the packages)."""
    import importlib.util

    for package, *parts in COMPILED_LAST:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return False
        if not Path(importlib.util.cache_from_source(str(Path(spec.submodule_search_locations[0], *parts)))).exists():
            return False
    return True


def _import_each(names: list[str]) -> None:
    """Imports each module of NAMES; one that an optional extra not installed lacks is passed over (its tests say so
    themselves)."""
    import contextlib
    import importlib

    for name in names:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept


_niced: list[int] = []  # this worker's niceness, once it has taken it


def pytest_runtest_setup(item):
    if item.path.name != "test_spark.py" and os.environ.get("PYTEST_XDIST_WORKER") and not _niced:
        _niced.append(os.nice(BEHIND_SPARK))


if __name__ == "__main__":  # the controller's helper process (pytest_configure)
    _import_each(sys.argv[1:])
