"""Writing user-facing files safely: checked before expensive work, written whole or not at all, and never in
place of anything an output did not make.

Every file a command writes (a chart, an export, a report folder, a checkpoint) is written to a temporary
name beside its destination and renamed into place when complete, so a full disk or an interruption never
leaves a truncated file, and the destination's folder is checked for writability before any work starts.
An output folder replaces only a folder that is missing, empty, or an earlier output of the same kind (marked by
a file `.neurons-output` naming its kind); an output file never replaces a DuckDB database or a folder. So no
`--out` can delete a warehouse, a lake or a folder of the user's files.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from toolkit.errors import UserError


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied" if exc.errno != errno.EROFS else "read-only file system"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def write_error(path: Path, exc: OSError) -> UserError:
    """One line naming the file and the cause of a failed write."""
    return UserError(f"cannot write {path}: {_reason(exc)}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(path: Path, folder: bool = False) -> None:
    """Give a file or folder made by mkstemp/mkdtemp (private to the owner) the permissions a plainly created one
    would have."""
    path.chmod((0o777 if folder else 0o666) & ~_umask())


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable_dir(folder: str | Path) -> Path:
    """Refuse, before any work, a destination folder that is a file or whose nearest existing ancestor cannot
    be written (the folder itself is not created here)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file; the output must be a folder")
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise UserError(f"cannot create {folder}: {base} is a file")
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".neurons-check-"):
            pass
    except OSError as exc:
        raise UserError(f"cannot write into {base} (for {folder}): {_reason(exc)}") from None
    return folder


MARK = ".neurons-output"
"""The file inside every output folder that names its kind ('report', 'checkpoint')."""

EARLIER = {
    "report": ("index.html", "summary.md"),
    "checkpoint": ("config.json", "neurons-finetune.json"),
}
"""Files by which an output folder made before folders were marked is recognised, per kind."""


REPORT_ENTRIES = {"index.html", "summary.md", "figures", "tables", MARK}
"""Everything a report folder holds: an earlier report with anything else in it is not replaced."""


def _made_by_us(folder: Path, kind: str) -> bool:
    """Whether FOLDER is an earlier output of KIND that holds nothing of the user's (no database, no lake, and for
    a report nothing but the report's files)."""
    entries = list(folder.iterdir())
    if any(is_database(e) or (e / "_delta_log").is_dir() for e in entries):
        return False
    if kind == "report" and any(e.name not in REPORT_ENTRIES for e in entries):
        return False
    mark = folder / MARK
    if mark.is_file():
        return mark.read_text(encoding="utf-8", errors="replace").strip() == kind
    return all((folder / name).is_file() for name in EARLIER[kind])


def check_output_dir(folder: str | Path, kind: str) -> Path:
    """`check_writable_dir`, and refuse an existing folder that holds anything but an earlier output of KIND:
    an output folder is written only where nothing of the user's can be lost."""
    folder = check_writable_dir(folder)
    if folder.is_dir() and any(folder.iterdir()) and not _made_by_us(folder, kind):
        raise UserError(
            f"--out {folder} is a folder with other files in it (not an earlier {kind} of neurons); writing the "
            f"{kind} there would replace them: choose a new or empty folder"
        )
    return folder


def is_database(path: Path) -> bool:
    """Whether PATH is a DuckDB database file (its header says so)."""
    try:
        with path.open("rb") as f:
            return f.read(12)[8:12] == b"DUCK"
    except OSError:
        return False


def check_writable_file(path: str | Path) -> Path:
    """Refuse, before any work, an output file that is a folder, a DuckDB database (a warehouse, whatever its
    name), or whose folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; name a file")
    if path.is_file() and is_database(path):
        raise UserError(f"--out {path} is a DuckDB database; writing there would replace it: name another file")
    check_writable_dir(path.parent if str(path.parent) else Path("."))
    return path


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside PATH; on success it replaces PATH, on any failure it is removed and PATH
    is left as it was. OS errors (disk full, permissions) become one clear line."""
    path = Path(path)
    check_writable_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part" + path.suffix)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _publish(tmp_path)
        os.replace(tmp_path, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(folder: str | Path, kind: str) -> Iterator[Path]:
    """Yield a temporary folder beside FOLDER; on success it is marked as an output of KIND and takes FOLDER's
    place (a previous FOLDER, which `check_output_dir` allows only when it is empty or an earlier output of that
    kind, is removed only then); on failure it is removed and FOLDER is left as it was."""
    folder = check_output_dir(folder, kind)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".part"))
    except OSError as exc:
        raise write_error(folder, exc) from None
    old = None
    try:
        yield tmp
        (tmp / MARK).write_text(kind + "\n", encoding="utf-8")
        _publish(tmp, folder=True)
        check_output_dir(folder, kind)  # again: the folder may have changed while the output was made
        if folder.exists():
            old = folder.parent / f"{tmp.name}.old"
            os.replace(folder, old)
        os.replace(tmp, folder)
    except OSError as exc:
        if old is not None and not folder.exists():
            os.replace(old, folder)
            old = None
        raise write_error(folder, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
