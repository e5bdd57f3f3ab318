"""`neurons load` of a Parquet folder or a Delta table: a long activations table too large for memory.

The files are read by DuckDB's streaming Parquet reader (hive partitions such as layer=3 become columns) and
imported one layer at a time: each layer's rows are grouped into one vector per sentence in DuckDB, which
spills to a temporary folder beside the warehouse beyond its memory limit, so memory stays bounded whatever
the table's size. All of that runs in a DuckDB session of its own, the warehouse closed, so readers keep
querying during an import; the warehouse is opened for writing only to copy the checked result in. The checks
of a single-file load hold: required columns, no missing keys, finite values in
float32 range, one language, label and text per sentence, and a full sentence x layer x neuron grid without
duplicates. Everything happens in one transaction: a refused table leaves the warehouse as it was.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import duckdb
import numpy as np

from toolkit.capture.load import FLOAT32_MAX, REQUIRED, imported_run
from toolkit.errors import UserError, first_line, storage_failure
from toolkit.store.arrow import insert_table, neuron_table
from toolkit.store.catalog import quote
from toolkit.store.connection import session
from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse, validate_run_name


def source_files(path: Path) -> tuple[list[str], str, str]:
    """(Parquet files, what they are, a fingerprint) of a Delta table (its current snapshot) or a folder."""
    from deltalake import DeltaTable

    if DeltaTable.is_deltatable(str(path)):
        import pyarrow as pa

        table = DeltaTable(str(path))
        actions = pa.table(table.get_add_actions(flatten=True))
        files = sorted(str(path / p) for p in actions["path"].to_pylist())
        what = f"Delta table {path} (version {table.version()})"
    else:
        files = sorted(
            str(p)
            for p in path.rglob("*.parquet")
            if not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
        )
        what = f"Parquet folder {path}"
    if not files:
        raise UserError(f"{path}: no Parquet files in the folder; pass a folder of .parquet files or a Delta table")
    h = hashlib.sha256()
    for f in files:  # names and sizes: hashing terabytes would take longer than the import
        h.update(f"{Path(f).relative_to(path)}\0{Path(f).stat().st_size}\n".encode())
    return files, what, h.hexdigest()


def load_folder(
    db: str | Path | None,
    path: str | Path,
    run: str,
    replace: bool = False,
    site: str = "residual",
    pooling: str | None = None,
    memory_limit: str | None = None,
) -> dict:
    """Import the long table in the Parquet folder or Delta table PATH as run RUN; returns counts."""
    path = Path(path)
    validate_run_name(run)
    files, what, fingerprint = source_files(path)
    keys = partition_keys(files, path)
    hive = "true" if keys else "false"  # folder names are columns only below the table's root
    scan = f"read_parquet([{', '.join(quote(f) for f in files)}], hive_partitioning = {hive}, union_by_name = true)"
    with Warehouse(db) as wh:  # created or migrated, and the name checked, before reading terabytes
        wh.check_new_run(run, replace)
        db_path = wh.path
    con = session()  # the checks and the grouping run here, the warehouse free for readers
    try:
        if memory_limit:
            try:
                con.execute(f"set memory_limit = {quote(memory_limit)}")
            except duckdb.Error:
                raise UserError(f"--memory {memory_limit!r} is not a size; e.g. --memory 4GB") from None
        con.execute(f"set temp_directory = {quote(str(db_path) + '.tmp')}")
        _check_partitions(con, files, path, keys, what)
        columns = {r[0]: r[1] for r in con.execute(f"describe select * from {scan}").fetchall()}
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise UserError(f"{what}: missing column(s) {', '.join(missing)}; a long table needs {', '.join(REQUIRED)}")
        for c in [*REQUIRED, *(x for x in ("text", "n_tokens") if x in columns)]:  # as the file load: one value a row
            if any(k in columns[c] for k in ("[]", "STRUCT", "MAP", "UNION")):
                raise UserError(f"{what}: column {c} holds {columns[c]} values; give one plain {c} per row")
        for c in ("sentence_id", "layer", "neuron"):
            if not any(t in columns[c] for t in ("INT", "HUGEINT")):
                raise UserError(f"{what}: column {c} is {columns[c]}; it must hold integers")
        text = "text" if "text" in columns else "NULL::VARCHAR"
        n_tokens = "n_tokens::INTEGER" if "n_tokens" in columns else "NULL::INTEGER"
        con.execute(
            f"create temp view source as select sentence_id, language::VARCHAR as language, label::VARCHAR as label, "
            f"{text} as text, layer, neuron, value::DOUBLE as value, {n_tokens} as n_tokens from {scan}"
        )
        _check_values(con, what, pooling)
        layers = _check_grid(con, what)
        _check_visible(con, what)
        neurons, n_values = _stage(con, layers, what)
        # the one short write: copy the staged tables in (readers wait only for this)
        with Warehouse(db_path, create=False, lock_wait=WRITER_LOCK_WAIT, session=con) as wh:
            with wh.new_run(run, replace) as (_, run_id):
                counts = _write(wh, run_id, run, neurons, what, path, fingerprint, site, pooling)
                wh.materialize(run_id)
    except duckdb.Error as exc:  # a file that is not Parquet, a truncated one, a folder that vanished mid-read
        if storage_failure(exc):
            raise
        raise UserError(
            f"{what}: cannot read the files ({first_line(exc)}); pass a folder of Parquet files only"
        ) from None
    finally:
        con.close()
    return {**counts, "n_values": n_values}


def partition_keys(files: list[str], root: Path) -> set[str]:
    """The KEY of every KEY=value folder between ROOT and a file (hive-style partitions)."""
    return {seg.split("=", 1)[0] for f in files for seg in Path(f).relative_to(root).parent.parts if "=" in seg}


def _check_partitions(con, files: list[str], root: Path, keys: set[str], what: str) -> None:
    """Refuse files whose own column disagrees with the folder name of the same key (`layer=2/` holding rows with
    layer 3): one of the two would silently win. Writers that keep the key in both (Polars does) agree and pass.
    A KEY=value folder above ROOT with a partition's key is refused too: DuckDB would read the key from it."""
    if not keys:
        return
    above = [seg for seg in root.absolute().parts if "=" in seg and seg.split("=", 1)[0] in keys]
    if above:
        raise UserError(
            f"{what}: the folder's own path has a folder {above[0]} named like its partitions; move or rename it"
        )
    source = f"read_parquet([{', '.join(quote(f) for f in files)}], union_by_name = true, hive_partitioning = false"
    inside = {r[0] for r in con.execute(f"describe select * from {source})").fetchall()}
    for key in sorted(keys & inside):
        folder_value = f"regexp_extract(filename, {quote('/' + key + '=([^/]+)/')}, 1)"
        row = con.execute(
            f"select any_value({key}::VARCHAR), any_value({folder_value}), count(*) from {source}, filename = true) "
            f"where {key}::VARCHAR is distinct from {folder_value}"
        ).fetchall()[0]
        if row[2]:
            raise UserError(
                f"{what}: {row[2]} row(s) have {key} {row[0]} inside a folder {key}={row[1]}; the column and the "
                "folder name must agree (keep one of the two)"
            )


def _check_values(con, what: str, pooling: str | None) -> None:
    """Keys present, values finite and within float32, layer and neuron ids in range: one pass over the files."""
    row = con.execute(
        f"""select count(*) filter (where sentence_id is null or language is null or label is null or layer is null
                                    or neuron is null or value is null),
                   count(*) filter (where not isfinite(value)),
                   count(*) filter (where abs(value) > {FLOAT32_MAX!r}),
                   count(*) filter (where layer < 0 or layer > 255 or neuron < 0 or neuron > 65535
                                    or sentence_id < 0 or sentence_id > 4294967295),
                   count(*) filter (where value < 0 or value > 1 or n_tokens is null or n_tokens < 1),
                   count(*)
            from source"""
    ).fetchall()[0]
    nulls, nonfinite, overflow, out_of_range, not_shares, n = row
    if n == 0:
        raise UserError(f"{what}: the table has no rows")
    problems = [
        (nulls, "row(s) lack a sentence_id, language, label, layer, neuron or value"),
        (nonfinite, "value(s) are not finite (nan or inf); fix or remove them"),
        (overflow, f"value(s) are outside the float32 range (|value| > {FLOAT32_MAX:.4g}); rescale or remove them"),
        (
            out_of_range,
            "row(s) have a layer outside 0-255, a neuron outside 0-65535 or a sentence_id outside 0-4294967295",
        ),
    ]
    if pooling == "active":
        problems.append((not_shares, "row(s) are not token shares in [0, 1] with n_tokens >= 1 (--pooling active)"))
    for count, message in problems:
        if count:
            raise UserError(f"{what}: {count} {message}")


def _check_visible(con, what: str) -> None:
    """As the file load: no invisible character in a language or label ('ar' and 'ar' with a right-to-left mark
    would be two languages that print the same). Read from the distinct values, after the per-sentence pass."""
    for column in ("language", "label"):
        for (value,) in con.execute(f"select distinct {column} from import_sentences").fetchall():
            odd = [ch for ch in value if unicodedata.category(ch) in ("Cf", "Cc")]
            if odd:
                name = unicodedata.name(odd[0], "control character")
                raise UserError(
                    f"{what}: {column} {value!r} contains an invisible character (U+{ord(odd[0]):04X} {name}); "
                    "remove it"
                )


def _check_grid(con, what: str) -> list[int]:
    """One language, label and text per sentence; every sentence has every layer. Returns the layers."""
    con.execute(
        """create or replace temp table import_sentences as
           select sentence_id::UINTEGER as sentence_id, min(language) as language, min(label) as label,
                  min(text) as text, min(n_tokens) as n_tokens,
                  count(distinct language) > 1 or count(distinct label) > 1 or count(distinct text) > 1
                    or count(distinct n_tokens) > 1 as mixed
           from source group by sentence_id"""
    )
    mixed = con.execute("select sentence_id from import_sentences where mixed limit 1").fetchall()
    if mixed:
        raise UserError(
            f"{what}: sentence {mixed[0][0]} has more than one language, label or text; each sentence_id must carry one of each"
        )
    layers = con.execute(
        "select layer, count(distinct sentence_id) from source group by layer order by layer"
    ).fetchall()
    n_sentences = con.execute("select count(*) from import_sentences").fetchall()[0][0]
    short = [k for k, n in layers if n < n_sentences]
    if short:
        raise UserError(
            f"{what}: layer {short[0]} lacks some sentences; every sentence needs every neuron of every layer"
        )
    return [int(k) for k, _ in layers]


def _stage(con, layers: list[int], what: str) -> tuple[dict[int, list[int]], int]:
    """Group each layer's rows into one vector per sentence (temporary table import_vectors), refusing missing or
    repeated neurons. Returns the neurons of each layer and the number of values."""
    neurons, n_values = {}, 0
    con.execute("create temp table import_vectors (layer SMALLINT, sentence_id UINTEGER, vector FLOAT[])")
    for layer in layers:
        ids = [
            r[0]
            for r in con.execute("select distinct neuron from source where layer = ? order by 1", [layer]).fetchall()
        ]
        neurons[layer] = ids
        con.execute(
            """create or replace temp table import_layer as
               select sentence_id::UINTEGER as sentence_id, list(neuron::USMALLINT order by neuron) as neurons,
                      list(value::FLOAT order by neuron) as vector
               from source where layer = ? group by sentence_id""",
            [layer],
        )
        bad = con.execute(
            "select sentence_id, len(neurons) from import_layer where neurons != ?::USMALLINT[] limit 1", [ids]
        ).fetchall()
        if bad:
            raise UserError(
                f"{what}: sentence_id {bad[0][0]} has {bad[0][1]} values for the {len(ids)} neurons of layer {layer} "
                "(missing or repeated neurons); every sentence needs each neuron of every layer once"
            )
        con.execute("insert into import_vectors select ?, sentence_id, vector from import_layer", [layer])
        n_values += con.execute("select sum(len(vector)) from import_layer").fetchall()[0][0]
    con.execute("drop table import_layer")
    return neurons, int(n_values)


def _write(wh: Warehouse, run_id: int, run: str, neurons, what, path: Path, fingerprint, site, pooling) -> dict:
    """The run, its sentences and its staged vectors (inside the caller's transaction)."""
    con = wh.con
    layers = sorted(neurons)
    con.execute(
        "insert into activation_vectors select ?, sentence_id, layer, vector from temp.import_vectors "
        "order by layer, sentence_id",
        [run_id],
    )
    counts = con.execute(
        "select count(*), count(distinct language), count(distinct label) from temp.import_sentences"
    ).fetchall()[0]
    hidden = max(max(v) for v in neurons.values()) + 1
    settings = {"data_file": str(path.resolve()), "data_fingerprint": fingerprint, "source": what}
    n_sentences, n_languages, n_labels = counts
    wh.insert_run(
        imported_run(
            run_id, run, path, fingerprint, layers, site, pooling, hidden, n_sentences, n_languages, n_labels, settings
        )
    )
    con.execute(
        "insert into sentences (run_id, sentence_id, source_id, text, language, label, n_tokens) "
        "select ?, sentence_id, sentence_id::VARCHAR, text, language, label, n_tokens from temp.import_sentences "
        "order by sentence_id",
        [run_id],
    )
    insert_table(
        con, "layer_neurons", neuron_table(layers, {k: np.asarray(v) for k, v in neurons.items()}), "run_id", run_id
    )
    return {"n_sentences": counts[0], "layers": layers, "hidden_size": hidden}
