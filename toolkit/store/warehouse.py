"""The DuckDB warehouse: applying the schema in `sql/`, run bookkeeping and the statistics' accessors (opening the
file safely is `toolkit.store.connection`).

Schema files under `sql/schema/` are numbered migrations applied once each (their number is the schema
version stored in the file); files under `sql/views/` are idempotent `CREATE OR REPLACE` definitions
re-applied whenever their text changes. Views and macros are therefore stored in the database file, so
any DuckDB client can query it without this package.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from toolkit.defaults import THRESHOLD
from toolkit.errors import UserError, first_line
from toolkit.store import catalog
from toolkit.store.claims import check_unclaimed
from toolkit.store.connection import WRITER_LOCK_WAIT, connect, interruptible, session
from toolkit.store.lake_views import LAKE_VIEWS, lake_view_sql, parquet
from toolkit.store.runs import Run

DEFAULT_DB = Path("warehouse") / "activations.duckdb"


def default_db() -> Path:
    """The database path from `NEURONS_DB`, else `warehouse/activations.duckdb`."""
    return Path(os.environ.get("NEURONS_DB") or DEFAULT_DB)


def check_db_path(path: Path, create: bool) -> None:
    """Refuse a folder, and a missing file unless this command creates warehouses."""
    if path.is_dir():
        raise UserError(f"--db {path} is a folder; pass a database file, e.g. {path / 'activations.duckdb'}")
    if not path.exists() and not create:
        raise UserError(
            f"database {path} does not exist; check --db, or create it with `neurons extract` or `neurons load`"
        )


def validate_run_name(name: str) -> None:
    """A run name is visible text: not blank, no control or zero-width characters, at most 200 characters."""
    if not name or not name.strip():
        raise UserError("--run is empty; give the run a name, e.g. --run xlmr-l11")
    if name != name.strip():
        raise UserError(f"--run {name!r} starts or ends with white space; remove it")
    odd = [ch for ch in name if unicodedata.category(ch) in ("Cc", "Cf")]
    if odd:
        raise UserError(f"--run {name!r} contains an invisible character (U+{ord(odd[0]):04X}); use visible text")
    if len(name) > 200:
        raise UserError(f"--run is {len(name)} characters long; use at most 200")


class Warehouse:
    """A connection to one warehouse file, read-write (schema applied) or read-only."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        create: bool = True,
        lock_wait: float | None = None,
        checked: bool = False,
        session: duckdb.DuckDBPyConnection | None = None,
    ):
        """Open PATH. Read-only opens are sandboxed (see `_connect`) and never change the file: a file without
        the warehouse schema, or with an older one, is refused. Read-write opens apply pending migrations to
        a warehouse; only with CREATE may they make a new one (a missing or empty file). A DuckDB file of
        another application is never written. CHECKED: the caller opened this file at its start with every check
        (a long job's per-chunk commit), so the kind, version and migration checks are not repeated; SESSION:
        attach to that in-memory DuckDB session and detach on close, leaving it open (see `commits`)."""
        self.path = Path(path) if path is not None else default_db()
        self.read_only = read_only
        self._runs: dict[str, Run] = {}
        self._held: dict[tuple[str, str, int], pl.DataFrame] = {}
        check_db_path(self.path, create and not read_only)
        if not read_only and not self.path.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create the folder of {self.path}: {exc.strerror or exc}") from None
        self._session = session if not read_only else None
        self.con = connect(self.path, read_only=read_only, lock_wait=lock_wait, shared=self._session)
        self.migrated = False
        if checked and not read_only:
            return
        try:
            self._check_kind(create and not read_only)
            self._check_version()
            if read_only:
                if not self._up_to_date():
                    raise UserError(
                        f"database {self.path} was made by an older version of neurons; run "
                        f"`neurons --db {self.path} upgrade` once to migrate it"
                    )
                self._read_lake_through_arrow()
            else:
                self._migrate()
        except BaseException:
            self.close()
            raise

    def _check_kind(self, create: bool) -> None:
        """A warehouse has `warehouse_meta`; a file with other tables and without it belongs to someone else."""
        if self._stored("schema_version") is not None:
            return
        n_objects = self.scalar(
            "select (select count(*) from duckdb_tables() where database_name = current_database()) "
            "+ (select count(*) from duckdb_views() where database_name = current_database() and not internal)"
        )
        if n_objects or not create:
            what = "it holds other tables" if n_objects else "it is empty"
            raise UserError(f"database {self.path} is not a neurons warehouse ({what}); pass the warehouse with --db")

    # -- schema -------------------------------------------------------------------------------------

    def _stored(self, key: str) -> str | None:
        has_meta = self.scalar(
            "select count(*) from duckdb_tables() where table_name = 'warehouse_meta' and database_name = current_database()"
        )
        if not has_meta:
            return None
        return self.scalar("select any_value(value) from warehouse_meta where key = ?", [key])

    def _check_version(self) -> None:
        stored = int(self._stored("schema_version") or 0)
        if stored > catalog.schema_version():
            raise UserError(
                f"database {self.path} has schema version {stored}, newer than this toolkit understands "
                f"({catalog.schema_version()}); upgrade the toolkit"
            )

    def _up_to_date(self) -> bool:
        return (
            int(self._stored("schema_version") or 0) == catalog.schema_version()
            and self._stored("views_sha256") == catalog.views_digest()
        )

    def _migrate(self) -> None:
        """Apply pending migrations and changed views in one transaction (no change when up to date)."""
        self._check_version()
        stored = int(self._stored("schema_version") or 0)
        self._version_before = stored
        self.migrated = False
        if self._up_to_date():
            return
        self.migrated = True
        digest = catalog.views_digest()
        pending = [text for version, text in catalog.migrations() if version > stored]
        with self.transaction():
            self.con.execute("create table if not exists warehouse_meta (key varchar primary key, value varchar)")
            for text in pending:
                try:
                    self.con.execute(text)
                except duckdb.ConstraintException as exc:  # rows the new keys refuse (written by two processes)
                    raise UserError(
                        f"cannot upgrade {self.path}: {first_line(exc)}; a run holds rows written twice by two "
                        "processes at once (before runs had one writer): export what you need from it with the "
                        "neurons that made it, delete the run there, then upgrade"
                    ) from None
            source = "select any_value(sql) from duckdb_views() where view_name = 'moments_source'"
            before = self.scalar(source)
            for text in catalog.view_files():
                self.con.execute(text)
            self.refresh_lake_views()
            if self.scalar(source) != before:  # the cache's definition changed: recompute every run's cache
                for (run_id,) in self.con.execute("select run_id from runs where status = 'complete'").fetchall():
                    self.materialize(run_id)
            for key, value in (("schema_version", str(catalog.schema_version())), ("views_sha256", digest)):
                self.con.execute("insert or replace into warehouse_meta values (?, ?)", [key, value])

    # -- runs attached from a lake (sql/schema/010_lake.sql) ------------------------------------------

    def refresh_lake_views(self) -> None:
        """Redefine the stored views `lake_activations` and `lake_moment_parts` to read exactly the Parquet files
        of the attached runs (`lake_files`), so any DuckDB client sees the lake runs (call inside a transaction)."""
        views = lake_view_sql(self._lake_files(), lambda kind, run_id, layer, paths: parquet(paths))
        if len(views) < len(LAKE_VIEWS):  # the empty definitions for views without files
            for view in LAKE_VIEWS.values():
                self.con.execute(f"create or replace view {view} as {catalog.view_query(view)}")
        for view, sql in views.items():
            self.con.execute(f"create or replace view {view} as {sql}")

    def _lake_files(self) -> pl.DataFrame:
        return self.sql("select run_id, kind, layer, list(path order by path) as paths from lake_files group by all")

    def _read_lake_through_arrow(self) -> None:
        """In the sandbox (no file access for DuckDB) the lake's files are read through Arrow datasets opened here,
        under temporary views that take the place of the stored ones for this session."""
        files = self._lake_files()
        if not files.height:
            return
        import pyarrow.dataset as ds

        def source(kind: str, run_id: int, layer: int | None, paths: list[str]) -> str:
            name = f"lake_{kind}_{run_id}_{'all' if layer is None else layer}"
            missing = [p for p in paths if not os.path.exists(p)]
            if missing:
                name = self.scalar("select name from runs where run_id = ?", [run_id])
                raise UserError(
                    f"run '{name}' was attached from a lake, and its file {missing[0]} is missing; restore the lake, "
                    f"or delete the run with `neurons --db {self.path} delete --run {name}`"
                )
            self.con.register(name, ds.dataset(paths, format="parquet"))
            return name

        for view, sql in lake_view_sql(files, source).items():
            self.con.execute(f"create temp view {view} as {sql}")

    def upgrade(self) -> tuple[int, int]:
        """(schema version before, after) of an explicit `neurons upgrade` (the migration ran in __init__)."""
        return self._version_before, catalog.schema_version()

    def materialize(self, run_id: int) -> None:
        """Refill the `moments` cache of one complete run from `moments_source` (inside a transaction)."""
        self.con.execute("delete from moments where run_id = ?", [run_id])
        self.con.execute("insert into moments select * from moments_source where run_id = ?", [run_id])
        self.con.execute("update runs set materialized_at = now()::timestamp where run_id = ?", [run_id])

    # -- helpers ------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN … COMMIT, rolled back on any error or interruption."""
        self.con.execute("begin transaction")
        try:
            yield self.con
        except BaseException:
            self.con.execute("rollback")
            raise
        self.con.execute("commit")

    def sql(self, query: str, params: list | None = None) -> pl.DataFrame:
        """Run one query and return its result as a Polars DataFrame."""
        return interruptible(lambda: self.con.sql(query, params=params or None).pl(), self.con.interrupt)

    def scalar(self, query: str, params: list | None = None):
        """The single value of a one-row, one-column query."""
        return interruptible(lambda: self.con.execute(query, params or []).fetchall()[0][0], self.con.interrupt)

    def close(self) -> None:
        """Close the connection; one attached to a job's session detaches the file (releasing its lock)."""
        if self._session is None:
            self.con.close()
            return
        self.con.execute("use memory")
        self.con.execute("detach warehouse")

    def __enter__(self) -> Warehouse:
        return self

    def __fspath__(self) -> str:
        """A warehouse stands for its file: every library call that takes a warehouse path takes an open
        `Warehouse` as well (one convention for the first argument; see `reads`)."""
        return str(self.path)

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------------

    def run(self, name: str, complete: bool = True) -> Run:
        """Run NAME (a clear error when it is missing, or unfinished while COMPLETE is asked for). A read-only
        warehouse fetches each run once."""
        found = self._runs.get(name)
        if found is None:
            df = self.sql("select * from runs where name = ?", [name])
            if not df.height:
                known = ", ".join(self.sql("select name from runs order by run_id")["name"].to_list()) or "none"
                raise UserError(f"no run named '{name}' in {self.path} (runs: {known})")
            row = df.row(0, named=True)
            found = Run(int(row["run_id"]), name, row)
            if self.read_only:
                self._runs[name] = found
        if complete and not found.complete:
            raise UserError(f"run '{name}' is incomplete; finish it with `neurons extract ... --run {name} --resume`")
        return found

    def run_row(self, name: str) -> dict | None:
        """The `runs` row of NAME as a dict, or None."""
        df = self.sql("select * from runs where name = ?", [name])
        return df.row(0, named=True) if df.height else None

    def run_id(self, name: str) -> int:
        """The id of a complete run; a clear error when it is missing or unfinished."""
        return self.run(name).id

    def ablation_run(self, ablation_id: int) -> str:
        """The name of the run ablation ABLATION_ID belongs to (an error listing the ablations there are)."""
        found = self.sql(
            "select r.name from ablations a join runs r using (run_id) where ablation_id = ?", [ablation_id]
        )
        if not found.height:
            known = self.sql("select ablation_id from ablations order by 1")["ablation_id"].to_list()
            raise UserError(
                f"no ablation {ablation_id} in {self.path} (ablations: {', '.join(map(str, known)) or 'none'})"
            )
        return found["name"][0]

    def next_id(self, table: str, column: str) -> int:
        """The next free id of COLUMN in TABLE (ids are never reused while a row holds them; call inside the
        transaction that inserts it)."""
        return int(self.scalar(f"select coalesce(max({column}), 0) + 1 from {table}"))

    def next_run_id(self) -> int:
        return self.next_id("runs", "run_id")

    def delete_ablation(self, ablation_id: int) -> None:
        """Remove one ablation with its sets and predictions (call inside a transaction)."""
        for table in ("ablation_predictions", "ablation_sets", "ablations"):
            self.con.execute(f"delete from {table} where ablation_id = ?", [ablation_id])

    def delete_run(self, run_id: int) -> None:
        """Remove every row of a run (call inside a transaction)."""
        for (ablation_id,) in self.con.execute(
            "select ablation_id from ablations where run_id = ?", [run_id]
        ).fetchall():
            self.delete_ablation(ablation_id)
        self.con.execute(
            "delete from steering_outputs where steer_id in (select steer_id from steerings where run_id = ?)", [run_id]
        )
        self.con.execute("delete from steerings where run_id = ?", [run_id])
        compared = "select comparison_id from comparisons where run_a = ? or run_b = ?"
        self.con.execute(f"delete from comparison_cka where comparison_id in ({compared})", [run_id, run_id])
        self.con.execute("delete from comparisons where run_a = ? or run_b = ?", [run_id, run_id])
        deactivations = "select deactivation_id from deactivations where run_id = ?"
        for table in ("deactivation_nll", "deactivation_sets", "deactivations"):
            self.con.execute(f"delete from {table} where deactivation_id in ({deactivations})", [run_id])
        ids = "select analysis_id from significance where run_id = ?"
        for table in ("significance_counts", "significance_neurons", "significance_correlation", "significance_anova"):
            self.con.execute(f"delete from {table} where analysis_id in ({ids})", [run_id])
        probes = "select probe_id from probes where run_id = ?"
        for table in ("probe_results", "probe_weights", "probe_topk_results"):
            self.con.execute(f"delete from {table} where probe_id in ({probes})", [run_id])
        lake = self.scalar("select count(*) from lake_files where run_id = ?", [run_id])
        for table in (
            "significance",
            "probes",
            "activation_vectors",
            "layer_neurons",
            "sentences",
            "moments",
            "fired_tokens",
            "language_tokens",
            "aggregate_chunks",
            "tokenization",
            "sentence_tokens",
            "token_values",
            "logit_effects",
            "runs",
        ):
            self.con.execute(f"delete from {table} where run_id = ?", [run_id])
        for table in ("lake_runs", "lake_files"):
            self.con.execute(f"delete from {table} where run_id = ?", [run_id])
        if lake:
            self.refresh_lake_views()

    def runs(self) -> pl.DataFrame:
        """Every run with its model, data, layers, pooling, counts, status and provenance."""
        return self.sql(
            """
            select r.name as run,
                   case when r.status = 'complete' then 'complete'
                        else 'incomplete (' || coalesce(d.done, c.done, 0) || '/' || r.n_sentences || ' sentences)'
                   end as status,
                   r.source, r.model, r.data_file, array_to_string(r.layers, ',') as layers,
                   r.site, r.pooling || case when r.aggregated then ' (corpus counts)' else '' end as pooling,
                   coalesce(nullif(array_to_string(json_extract_string(r.settings, '$.splits[*]'), ','), ''), 'all') as split,
                   json_extract(r.settings, '$.max_length')::INTEGER as max_length,
                   r.n_sentences as sentences, r.n_languages as languages, r.n_labels as labels,
                   r.hidden_size as neurons, r.n_truncated as truncated,
                   coalesce(f.poor || ' underserved', case when f.n > 0 then 'fits every language' end) as tokenizer,
                   strftime(r.created_at, '%Y-%m-%d %H:%M:%S') as created,
                   strftime(r.materialized_at, '%Y-%m-%d %H:%M:%S') as statistics_cached,
                   r.toolkit_version as version
            from runs as r
            left join (select run_id, count(*) as done from sentences group by run_id) as d using (run_id)
            left join (select run_id, sum(n_sentences) as done from aggregate_chunks group by run_id) as c using (run_id)
            left join (
                select run, count(*) as n,
                       string_agg(printf('%s %.2fx', language, fertility_ratio), ', ' order by fertility_ratio desc)
                           filter (where underserved) as poor
                from tokenizer_fitness group by run
            ) as f on f.run = r.name
            order by r.run_id
            """
        )

    @contextmanager
    def new_run(self, name: str, replace: bool) -> Iterator[tuple[duckdb.DuckDBPyConnection, int]]:
        """A transaction that makes run NAME: refused when NAME exists (unless REPLACE, which deletes the old run
        inside the same transaction); yields the connection and the new run's id."""
        existing = self.check_new_run(name, replace)
        if existing is not None:  # replacing: not while another process writes that run
            check_unclaimed(self.path, name)
        run_id = self.next_run_id()
        with self.transaction() as con:
            if existing is not None:
                self.delete_run(int(existing["run_id"]))
            yield con, run_id

    def insert_run(self, run: dict) -> None:
        """Insert one `runs` row from a dict of its columns (call inside a transaction)."""
        cols = list(run)
        self.con.execute(
            f"insert into runs ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})", [run[c] for c in cols]
        )

    def insert_tokenization(self, run_id: int, counts: pl.DataFrame) -> None:
        """Insert the per-language tokenization COUNTS of a run (`toolkit.capture.tokens.tokenization`; call inside
        the transaction that inserts the run)."""
        rows = counts.select(pl.lit(run_id).alias("run_id"), pl.all()).to_arrow()  # noqa: F841 (read by DuckDB)
        self.con.execute("insert into tokenization by name select * from rows")

    def tokenizer_fitness(self, run: str) -> pl.DataFrame:
        """Per language of RUN, the unknown share and fertility (`tokenizer_fitness`, definition 18), with the
        fertility limit as a column; empty for a run with no tokenization record."""
        return self.sql(
            "select *, fertility_limit() as limit from tokenizer_fitness where run = ? order by language", [run]
        )

    def check_new_run(self, name: str, replace: bool) -> dict | None:
        """The existing run NAME when REPLACE allows overwriting it; an error when it exists otherwise."""
        existing = self.run_row(name)
        if existing is not None and not replace:
            state = "exists already" if existing["status"] == "complete" else "exists and is incomplete"
            hint = "" if existing["status"] == "complete" else " or --resume to continue it"
            raise UserError(
                f"run '{name}' {state} in {self.path}; choose another --run, pass --replace to redo it{hint}"
            )
        return existing

    # -- statistics (sql/views/010_statistics.sql), one run and optionally one layer ------------------

    def view(self, name: str, run: str, layer: int | None = None) -> pl.DataFrame:
        """Rows of statistics view NAME for RUN (and LAYER), in the view's key order."""
        if name not in STATISTIC_VIEWS:
            raise UserError(f"unknown view {name}; one of {', '.join(STATISTIC_VIEWS)}")
        where = "run = ?" + (" and layer = ?" if layer is not None else "")
        params = [run] + ([layer] if layer is not None else [])
        return self.sql(f"select * from {name} where {where} order by {STATISTIC_VIEWS[name]}", params)

    def zscores(self, run: str, layer: int | None = None) -> pl.DataFrame:
        """Definition 1: z per sentence and neuron, within language."""
        return self.view("zscores", run, layer)

    def label_profiles(self, run: str, layer: int | None = None) -> pl.DataFrame:
        """Definition 2: mean z per language, label and neuron."""
        return self.view("label_profiles", run, layer)

    def between_label_variance(self, run: str, layer: int | None = None) -> pl.DataFrame:
        """Definition 3: variance across labels of the pooled label means, ranked."""
        return self.view("between_label_variance", run, layer)

    def label_variance(self, run: str, layer: int | None = None) -> pl.DataFrame:
        """Definition 4: variance of z within each label."""
        return self.view("label_variance", run, layer)

    def crosslingual_correlation(self, run: str, layer: int | None = None) -> pl.DataFrame:
        """Definition 5: Spearman and cosine per label and language pair."""
        return self.view("crosslingual_correlation", run, layer)

    def held(self, view: str, run: str, layer: int, order: str) -> pl.DataFrame:
        """VIEW's rows for RUN's LAYER (without those columns) by ORDER, once per read-only session: for views that pass
        over the layer's values (crosslingual_ceiling, length_confound, ...) and that a report reads many times."""
        found = self._held.get((view, run, layer))
        if found is None:
            query = f"select * exclude (run, layer) from {view} where run = ? and layer = ? order by {order}"
            found = self.sql(query, [run, layer])
            if self.read_only:
                self._held[(view, run, layer)] = found
        return found

    def crosslingual_ceiling(self, run: str, layer: int) -> pl.DataFrame:
        """Definition 9 by label and pair (held once per read-only session)."""
        return self.held("crosslingual_ceiling", run, layer, "label, language_a, language_b")

    def language_pair_summary(self, run: str, layer: int | None = None) -> pl.DataFrame:
        """Definition 5 averaged over labels."""
        return self.view("language_pair_summary", run, layer)

    def top_neurons(self, run: str, layer: int | None = None) -> pl.DataFrame:
        """Definition 7: neurons by |mean z| per language and label."""
        return self.view("top_neurons", run, layer)

    def _macro(self, call: str, order: str, run: str, layer: int, params: list) -> pl.DataFrame:
        return self.sql(f"select * from {call} where run = ? and layer = ? order by {order}", [*params, run, layer])

    def neuron_classes(
        self, run: str, layer: int, threshold: float = THRESHOLD, absolute: bool = False
    ) -> pl.DataFrame:
        """Definition 6 at any threshold (P > threshold, or |P| > threshold with ABSOLUTE)."""
        return self._macro("classify_neurons(?, absolute := ?)", "label, neuron", run, layer, [threshold, absolute])

    def class_counts(
        self, run: str, layer: int, threshold: float = THRESHOLD, absolute: bool = False, sensitive: bool = False
    ) -> pl.DataFrame:
        """Neurons per class and label, with their share (among label-sensitive neurons with SENSITIVE)."""
        return self._macro(
            "count_classes(?, absolute := ?, sensitive := ?)",
            "label, neuron_class",
            run,
            layer,
            [threshold, absolute, sensitive],
        )

    def sensitive_counts(self, run: str, layer: int) -> dict:
        """Neurons tested, those with q < alpha alone, and the label-sensitive ones (q and effect size), from
        the view `neuron_significance` of the stored analysis."""
        row = self.sql(
            "select count(*) as n_neurons, count(*) filter (where q_significant) as q_significant, "
            "count(*) filter (where sensitive) as sensitive, any_value(effect_measure) as effect "
            "from neuron_significance where run = ? and layer = ?",
            [run, layer],
        ).row(0, named=True)
        return {k: v if k == "effect" else int(v or 0) for k, v in row.items()}

    def language_sensitive_counts(self, run: str, layer: int) -> pl.DataFrame:
        """Per language: neurons tested, label-sensitive, and their share (view `language_sensitive_counts`)."""
        return self.sql(
            "select language, n_tested, n_sensitive, share from language_sensitive_counts "
            "where run = ? and layer = ? order by n_sensitive desc, language",
            [run, layer],
        )

    def monolingual_counts(
        self, run: str, layer: int, threshold: float = THRESHOLD, absolute: bool = False
    ) -> pl.DataFrame:
        """Distinct neurons monolingual in each language for at least one label."""
        return self._macro("count_monolingual(?, absolute := ?)", "language", run, layer, [threshold, absolute])


def reads(fn):
    """Let FN, whose first argument is an open Warehouse, take a warehouse path as well (opened read-only for the
    call): with `Warehouse.__fspath__`, every library entry point takes either as its first argument."""

    @functools.wraps(fn)
    def wrapper(db, *args, **kwargs):
        if isinstance(db, Warehouse):
            return fn(db, *args, **kwargs)
        with Warehouse(db, read_only=True) as wh:
            return fn(wh, *args, **kwargs)

    return wrapper


@contextmanager
def commits(path: Path) -> Iterator[Callable[[], Warehouse]]:
    """For a long job whose start opened PATH with every check: a function that opens PATH for one chunk's commit,
    cheaply (no checks again, one DuckDB session for the whole job), and releases the file after each commit so
    that readers get in between commits."""
    shared = session()
    try:
        yield lambda: Warehouse(path, create=False, lock_wait=WRITER_LOCK_WAIT, checked=True, session=shared)
    finally:
        shared.close()


def migrate(db) -> None:
    """Open DB for writing once, so that an older warehouse is migrated before a writing command reads it
    read-only (read-only opens refuse an older warehouse rather than change it)."""
    Warehouse(db, create=False).close()


def read_then_write(db, compute, store):
    """The sequence of every command that computes from a run and stores the result: migrate an older warehouse
    (a writing command may), COMPUTE(read-only warehouse) without holding the write lock, then
    STORE(writable warehouse, result) in one short write. Returns (result, what STORE returned)."""
    migrate(db)
    with Warehouse(db, read_only=True) as wh:
        result = compute(wh)
    with Warehouse(db, create=False, lock_wait=WRITER_LOCK_WAIT) as wh:
        return result, store(wh, result)


# statistics views and their natural row order
STATISTIC_VIEWS = {
    "zscores": "layer, sentence_id, neuron",
    "label_profiles": "layer, language, label, neuron",
    "between_label_variance": "layer, rank",
    "label_variance": "layer, label, neuron",
    "crosslingual_correlation": "layer, label, language_a, language_b",
    "language_pair_summary": "layer, language_a, language_b",
    "neuron_classes": "layer, label, neuron",
    "class_counts": "layer, label, neuron_class",
    "monolingual_counts": "layer, language",
    "top_neurons": "layer, language, label, rank",
    "label_anova": "layer, language nulls first, neuron",
    "layer_summary": "layer",
    "class_significance": "layer, label nulls last, language, neuron_class",
    "neuron_significance": "layer, neuron",
    "correlation_intervals": "layer, label nulls last, language_a, language_b",
}
