"""The one exception type the CLI turns into a single line on stderr."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UserError(Exception):
    """Bad input or a state the user can fix: the message says what is wrong and what to do."""


STORAGE_TEXTS = {
    "no space left on device": "no space left on the device; free some space and rerun",
    "disk quota exceeded": "the disk quota is exceeded; free some space and rerun",
    "read-only file system": "the file system is read-only; write to another place",
    "permission denied": "permission denied; check the permissions of the folder",
}
"""What a storage engine (DuckDB, Delta, Arrow) says when the file system refuses a write, and what to do."""


def storage_failure(exc: BaseException) -> str | None:
    """One line for a failure of the file system that a storage engine reports in its own exception type (DuckDB's
    IOException, a failed commit, a Delta or Arrow error), None for anything else. What was committed before is
    kept: each engine commits atomically."""
    text = str(exc)
    for pattern, advice in STORAGE_TEXTS.items():
        if pattern in text.lower():
            return f"cannot write: {advice} ({first_line(exc)[:200]})"
    if type(exc).__name__ == "IOException":  # DuckDB: a file it could not read or write (a checkpoint, the WAL)
        return f"cannot write or read the warehouse's files: {first_line(exc)[:200]}; check free space and permissions"
    if type(exc).__name__ == "OutOfMemoryException":  # DuckDB past its memory limit (spilling could not help)
        return f"out of memory: {first_line(exc)[:200]}; free memory, or give less work at once"
    return None
