"""The Vega scripts a self-contained page inlines (Vega, Vega-Lite and vega-embed as one bundle).

vl-convert builds the bundle from the sources it carries, which takes it about 2 s on 2 cores, the same bytes each
time for one vl-convert version. It is built once per version and kept in the user's cache folder
(`$XDG_CACHE_HOME/neurons`, else `~/.cache/neurons`); where that folder cannot be written, it is built each time.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import vl_convert

from toolkit.errors import UserError
from toolkit.store.output import atomic_file


def cache_dir() -> Path:
    """The user's cache folder for this toolkit."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "neurons"


@functools.cache
def bundle() -> str:
    """The script that draws every chart of a page, offline."""
    path = cache_dir() / f"vega-bundle-{vl_convert.__version__}.js"
    try:
        cached = path.read_text(encoding="utf-8")
        if cached.strip():  # written whole (atomically) or not at all; an emptied file is built again
            return cached
    except (OSError, UnicodeDecodeError):
        pass
    script = vl_convert.javascript_bundle()
    try:
        with atomic_file(path) as tmp:  # whole or not at all: another process may be reading it
            tmp.write_text(script, encoding="utf-8")
    except UserError:  # an unwritable cache costs time, never the page
        pass
    return script
