"""One writer per run: a claim that an extraction holds from its first check to its last commit, and that a second
extraction of the run (`--resume`, `--replace`), `delete --run` and any other replacement respect.

A claim is an exclusive `flock` on a small file beside the warehouse (`.NAME.claims/`), one per run, holding the
claimant's process id and host for the message. The kernel releases it when the process ends in any way (kill -9
included), so a killed job never leaves a stale claim behind, and the warehouse itself is not written to claim.
Where `fcntl` does not exist (Windows) claims are not taken.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from toolkit.errors import UserError

_HELD: dict[tuple[str, str], int] = {}
"""The claims this process holds: (warehouse path, run) -> the locked file's descriptor."""


def _lock_file(db: Path, run: str) -> Path:
    return db.parent / f".{db.name}.claims" / (hashlib.sha256(run.encode()).hexdigest()[:24] + ".lock")


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        who = json.loads(os.read(fd, 4096).decode() or "{}")
    except ValueError:
        who = {}
    return f"process {who.get('pid', '?')} on {who.get('host', '?')}"


@contextmanager
def claim(db: str | os.PathLike[str], run: str) -> Iterator[None]:
    """Hold the claim on RUN of warehouse DB inside the context; refused in one line while another process holds
    it. Nested claims of the same run in this process are one claim."""
    try:
        import fcntl
    except ImportError:  # no flock: no claims
        yield
        return
    db = Path(db).absolute()
    key = (str(db), run)
    if key in _HELD:
        yield
        return
    path = _lock_file(db, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise UserError(
            f"run '{run}' is being written by {holder}; wait for it to finish, or stop it, and try again"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        _HELD[key] = fd
        yield
    finally:
        _HELD.pop(key, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def check_unclaimed(db: str | os.PathLike[str], run: str) -> None:
    """Refuse in one line when another process holds RUN's claim (before deleting or replacing the run). Without a
    claim file nobody has ever claimed the run (a claimant makes it first), and nothing is written."""
    if _lock_file(Path(db).absolute(), run).exists():
        with claim(db, run):
            pass
