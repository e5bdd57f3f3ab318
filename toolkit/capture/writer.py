"""Write-behind: a job's chunks are committed by one writer thread while the model computes the next, so the
forward pass does not wait for commits (DuckDB, Delta and the model's kernels all release the GIL).

What a commit promises stays: the writer commits the chunks in the order they were made, each in its own
transaction, so `--resume` still skips exactly the committed ones. A bounded queue (DEPTH chunks) holds the
model back when the writer falls behind, so memory stays bounded. An error in the writer stops the job at the
next chunk with that error (no hang); on an error or an interruption in the job itself, the chunks already
made are committed before it ends (they are done work; a kill -9 loses only what was not committed).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

DEPTH = 2
"""Chunks that may wait for the writer: one being committed while one more is made."""

READER_WINDOW = 0.05
"""Seconds a warehouse writer leaves the file unlocked between two commits when the next chunk is already
waiting: readers (`neurons runs`, `query`) retry their lock every few tens of milliseconds, and a writer that
reopened at once would keep them out for the whole job."""

_DONE = object()


class WriteBehind(Generic[T]):
    """`with WriteBehind(commit) as w: w.put(chunk)` calls COMMIT(chunk) for every chunk, in order, in a writer
    thread; leaving the block waits for the last commit and raises the writer's error, if any. PAUSE: seconds
    left between two commits when the next chunk is already waiting (READER_WINDOW where readers share a file)."""

    def __init__(self, commit: Callable[[T], None], depth: int = DEPTH, pause: float = 0.0):
        self._commit = commit
        self._pause = pause  # seconds between two commits when the next is waiting (READER_WINDOW for a warehouse)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="neurons-writer", daemon=True)
        self.waited = 0.0  # seconds the job's thread (the model) was held back by a full queue
        self.committing = 0.0  # seconds the writer spent in commits
        self.n_commits = 0

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:  # after a failure the rest is drained, not committed
                start = time.perf_counter()
                try:
                    self._commit(item)
                except BaseException as exc:  # handed to the job's thread, which raises it
                    self._error = exc
                self.committing += time.perf_counter() - start
                self.n_commits += 1
                if self._pause and not self._queue.empty():
                    time.sleep(self._pause)

    def put(self, item: T) -> None:
        """Queue ITEM for the writer (waits while DEPTH chunks are queued); raises the writer's error first."""
        start = time.perf_counter()
        try:
            while True:
                self._raise()
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
        finally:
            self.waited += time.perf_counter() - start

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> WriteBehind[T]:
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        while True:  # the writer drains the queue whatever happens, so this cannot wait forever
            try:
                self._queue.put(_DONE, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        while self._thread.is_alive():  # an interrupted join can report a live thread as done; wait in steps
            self._thread.join(timeout=0.1)
        if exc_type is None:
            self._raise()
