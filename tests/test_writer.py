"""Write-behind (toolkit.capture.writer): chunks are committed in order by one writer thread; a writer error
stops the job at the next chunk (no hang); on an error in the job, the chunks already made are committed."""

from __future__ import annotations

import threading
import time

import pytest

from toolkit.capture.writer import WriteBehind


def test_commits_in_order_in_another_thread_with_bounded_queue():
    done, threads = [], set()

    def commit(item):
        time.sleep(0.01)
        threads.add(threading.get_ident())
        done.append(item)

    with WriteBehind(commit, depth=2) as w:
        for i in range(20):
            w.put(i)
            assert i - len(done) <= 3  # at most depth queued and one being committed
    assert done == list(range(20)) and threads == {next(iter(threads))} != {threading.get_ident()}


def test_a_writer_error_stops_the_job_at_the_next_chunk():
    def commit(item):
        if item == 3:
            raise OSError(28, "No space left on device")

    made = []
    start = time.monotonic()
    with pytest.raises(OSError, match="No space left"):
        with WriteBehind(commit) as w:
            for i in range(1000):
                made.append(i)
                w.put(i)
                time.sleep(0.002)
    assert len(made) < 20 and time.monotonic() - start < 10  # stopped at once, no hang


def test_an_error_in_the_job_still_commits_what_was_made():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with WriteBehind(lambda item: (time.sleep(0.05), done.append(item))) as w:
            for i in range(3):
                w.put(i)
            raise KeyboardInterrupt
    assert done == [0, 1, 2]
