"""Opening a DuckDB file safely: a writer's connection, a reader's sandbox, and waiting out another process's
lock with one clear line when it does not end."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb

from toolkit.errors import UserError, first_line
from toolkit.store.catalog import quote

T = TypeVar("T")


def lock_wait() -> float:
    """Seconds a command waits for another process's lock before giving up (env NEURONS_LOCK_WAIT, default 30)."""
    text = os.environ.get("NEURONS_LOCK_WAIT") or "30"
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UserError(f"NEURONS_LOCK_WAIT={text!r} is not a number of seconds; set it to e.g. 30, or unset it")
    return seconds


WRITER_LOCK_WAIT = -1.0
"""Marker for a long job's commit: it waits ten times as long (it has work to lose)."""


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


def _lock_message(path: Path, exc: BaseException, waited: float) -> str:
    pid = re.search(r"PID (\d+)", str(exc))
    who = f" (process {pid.group(1)})" if pid else ""
    return (
        f"database {path} is locked by another process{who} (waited {waited:.0f} s); wait for it to finish "
        "or close it, or use another --db"
    )


def with_lock_retry(path: Path, opener, wait: float | None = None):
    """OPENER() retried while another process holds the file's lock (writers hold it only while they commit),
    for up to WAIT seconds (default `lock_wait()`, WRITER_LOCK_WAIT for ten times that); then one clear error."""
    wait = lock_wait() * (10 if wait == WRITER_LOCK_WAIT else 1) if wait is None or wait < 0 else wait
    start = time.monotonic()
    delay = 0.02
    while True:
        try:
            return opener()
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise
            waited = time.monotonic() - start
            if waited >= wait:
                raise UserError(_lock_message(path, exc, waited)) from None
            time.sleep(min(delay, max(wait - waited, 0.01)))
            delay = min(delay * 1.5, 0.5)


def _open_error(path: Path, exc: BaseException) -> UserError:
    first = first_line(exc)
    if isinstance(exc, duckdb.IOException):
        return UserError(f"cannot open database {path}: {first}")
    return UserError(f"cannot open database {path}: {first}; is it a DuckDB file?")


ROW_GROUP_ROWS = 2048
"""Rows per row group of the tables written here. A row of `activation_vectors` holds a whole layer (hundreds of
values), and every commit of a long job rewrites its table's last, partly filled row group: small row groups
keep that rewrite, and the space it frees, small."""


def session() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB session, quiet: DuckDB's progress bar would otherwise be printed into the output of
    any query that runs for more than two seconds (a CSV or JSON result included)."""
    con = duckdb.connect(":memory:")
    con.execute("set enable_progress_bar = false")
    return con


def connect(
    path: Path, read_only: bool, lock_wait: float | None = None, shared: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-write connection to PATH, or for READ_ONLY a sandbox: an in-memory session with PATH attached
    read-only as the default catalog, file system access disabled and the configuration locked, so that no
    statement whatever (COPY, EXPORT, ATTACH, INSTALL, EXPLAIN ANALYZE of a write, a SET undoing this) can
    change the warehouse or write, read or attach any other file. Temporary tables live in memory. A read-write
    open may attach PATH to an existing in-memory session SHARED (a long job's commits: starting DuckDB is most of
    what a reopen costs)."""

    def rw() -> duckdb.DuckDBPyConnection:
        con = shared or session()
        try:
            con.execute(f"attach {quote(str(path))} as warehouse (row_group_size {ROW_GROUP_ROWS})")
            con.execute("use warehouse")
        except BaseException:
            if shared is None:
                con.close()
            raise
        return con

    def sandbox() -> duckdb.DuckDBPyConnection:
        con = session()
        try:
            con.execute(f"attach {quote(str(path))} as warehouse (read_only)")
            con.execute("use warehouse")
            con.execute("set enable_external_access = false")
            con.execute("set lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return con

    try:
        return with_lock_retry(path, sandbox if read_only else rw, lock_wait)
    except UserError:
        raise
    except duckdb.Error as exc:
        raise _open_error(path, exc) from None


def interruptible(work: Callable[[], T], stop: Callable[[], None]) -> T:
    """WORK() run so that Ctrl-C stops it: an engine (DuckDB, Spark through py4j) holds the calling thread in
    native code or a socket read, where Python's signal handler cannot run or must not reenter, so the work runs
    in a thread and the main thread waits; on Ctrl-C it calls STOP() (interrupt the query, cancel the jobs) until
    the work has ended, then raises KeyboardInterrupt (one line in the CLI, exit 130). The wait is on an Event: a
    Thread.join interrupted by Ctrl-C may report a live thread as done."""
    if threading.current_thread() is not threading.main_thread():
        return work()
    box: dict = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True).start()
    try:
        while not done.wait(0.05):
            pass
    except KeyboardInterrupt:
        while not done.is_set():  # until the work has stopped (a second Ctrl-C too), or the engine stays busy
            stop()
            try:
                done.wait(0.05)
            except KeyboardInterrupt:
                continue
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]
