"""What every command of `neurons` shares: one place that turns any failure into one line on stderr (the group),
the warehouse path in the context, and the shared options, whose defaults come from the library's option
dataclasses (`toolkit.*.options`) so that a default is written once."""

from __future__ import annotations

import dataclasses
import errno
import functools
import math
import os
import sys
from pathlib import Path

import click

from toolkit.capture.options import DEVICE_MAPS, DataSpec
from toolkit.defaults import THRESHOLD
from toolkit.errors import UserError, first_line, storage_failure

INTERRUPTED = (
    "interrupted; what was committed is kept (rerun with --resume to continue an extraction; a lake shard "
    "continues when its command is rerun)"
)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"neurons: {message}", err=True)
    sys.exit(code)


def os_error_line(exc: OSError) -> str:
    """A user-caused file system failure (disk full, no permission, a missing folder) in one line."""
    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if getattr(exc, "errno", None) == errno.ENOSPC:
        reason = "no space left on the device"
    return f"cannot write or read{where}: {reason[:1].lower() + reason[1:]}"


def one_line(exc: BaseException) -> None:
    """Exit with EXC as one line: a UserError as it says, Ctrl-C as a note on what was kept, a file system failure
    as what could not be written, a bug as one line (the traceback with NEURONS_DEBUG set)."""
    if isinstance(exc, UserError):
        fail(str(exc))
    if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "InterruptException":  # DuckDB's Ctrl-C
        fail(INTERRUPTED, 130)
    if isinstance(exc, BrokenPipeError):
        sys.exit(0)
    if isinstance(exc, click.exceptions.Abort):
        fail("aborted", 1)
    if isinstance(exc, OSError):
        fail(os_error_line(exc))
    storage = storage_failure(exc)
    if storage:
        fail(storage)
    if os.environ.get("NEURONS_DEBUG"):
        raise exc
    fail(
        f"internal error: {type(exc).__name__}: {first_line(exc)} (rerun with NEURONS_DEBUG=1 for the traceback "
        "and report it)",
        70,
    )


class OneLineGroup(click.Group):
    """A group whose commands fail in one line: usage errors (a bad option, a missing argument) instead of click's
    usage block, and every error a command raises (`one_line`), handled here once for every command."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            fail("aborted", 1)
        except click.ClickException as exc:
            fail(f"{exc.format_message()} (see `neurons --help`)".replace("\n", " "), exc.exit_code)
        if isinstance(code, int) and code and standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure becomes one line here
            if ctx.parent is not None:  # a nested group: its root turns it into one line
                raise
            one_line(exc)


class Context:
    def __init__(self, db: Path):
        self.db = db


pass_ctx = click.make_pass_decorator(Context)


def default(options: type, name: str):
    """The default of field NAME of the options dataclass OPTIONS: the one place a CLI default comes from."""
    for f in dataclasses.fields(options):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{options.__name__} has no default for {name}")


# -- value checks --------------------------------------------------------------------------------------


def finite(ctx, param, value):
    """A float option that must be a finite number."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number", ctx, param)
    return value


def probability(ctx, param, value):
    """A float option strictly between 0 and 1."""
    if value is not None and not 0 < value < 1:
        raise click.BadParameter(f"{value} must be strictly between 0 and 1", ctx, param)
    return value


def effect_size(ctx, param, value):
    """An effect-size option in [0, 1)."""
    if value is not None and not 0 <= value < 1:
        raise click.BadParameter(f"{value} must be in [0, 1)", ctx, param)
    return value


def at_least(minimum: int):
    """An int option of at least MINIMUM."""

    def check(ctx, param, value):
        if value is not None and value < minimum:
            raise click.BadParameter(f"{value} must be at least {minimum}", ctx, param)
        return value

    return check


SEED = click.IntRange(0, 2**32 - 1)
"""A random seed: what numpy and torch accept."""


def comma_list(text: str | None) -> tuple[str, ...] | None:
    """'a, b,c' -> ('a', 'b', 'c'); None or blank -> None."""
    return tuple(x.strip() for x in text.split(",") if x.strip()) or None if text else None


# -- shared options ------------------------------------------------------------------------------------


def run_option(help_text: str = "Run to analyse.", required: bool = True):
    return click.option("--run", required=required, help=help_text)


def layer_option(help_text: str = "Layer (default: the penultimate stored layer)."):
    return click.option("--layer", type=int, default=None, help=help_text)


def json_option(help_text: str = "JSON instead of tables."):
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def quiet_option(fn):
    return click.option("--quiet", is_flag=True, help="No progress bar.")(fn)


def out_option(help_text: str, folder: bool = False, **kwargs):
    kind = {"file_okay": False} if folder else {"dir_okay": False}
    kwargs.setdefault("required", True)
    return click.option("--out", type=click.Path(path_type=Path, **kind), help=help_text, **kwargs)


def threshold_option(help_text: str = "Activity threshold on mean z."):
    return click.option(
        "--threshold", type=float, default=THRESHOLD, show_default=True, callback=finite, help=help_text
    )


def abs_option(help_text: str = "Classify on |mean z|."):
    return click.option("--abs", "absolute", is_flag=True, help=help_text)


def device_option(fn):
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)(fn)


def device_map_option(fn):
    """--device-map: accelerate's placement of a checkpoint larger than one GPU."""
    return click.option(
        "--device-map",
        type=click.Choice(DEVICE_MAPS),
        default=None,
        help="For a checkpoint larger than one GPU: accelerate spreads its blocks over every GPU (then CPU memory); "
        "--device is then not used. Needs accelerate (the 'large' extra).",
    )(fn)


def format_options(fn):
    """--csv, --json, --markdown: one output format (default: a table)."""
    for opt in reversed(
        [
            click.option("--csv", "fmt", flag_value="csv", help="CSV output."),
            click.option("--json", "fmt", flag_value="json", help="JSON output (a list of rows)."),
            click.option("--markdown", "fmt", flag_value="markdown", help="Markdown table output."),
        ]
    ):
        fn = opt(fn)
    return fn


def data_options(fn):
    """The options that say which columns of a data file hold what and which rows to use; the command receives
    them as one `DataSpec` named `spec` (the defaults are DataSpec's)."""
    d = DataSpec()
    options = [
        click.option("--text-column", default=d.text_column, show_default=True, help="Column with the sentence."),
        click.option(
            "--language-column", default=d.language_column, show_default=True, help="Column with the language code."
        ),
        click.option("--label-column", default=d.label_column, show_default=True, help="Column with the gold label."),
        click.option(
            "--id-column", default=d.id_column, help="Column with unique sentence ids (default: row numbers)."
        ),
        click.option(
            "--split-column",
            default=d.split_column,
            help="Column with the split (default 'split' when --split is given).",
        ),
        click.option("--split", "splits", default=None, help="Keep only these splits, comma-separated, e.g. dev,test."),
        click.option("--limit", type=int, default=d.limit, help="Use only the first N sentences (after --split)."),
    ]
    names = [f.name for f in dataclasses.fields(DataSpec)]

    def wrapper(*args, **kwargs):
        given = {n: kwargs.pop(n) for n in names}
        given["splits"] = comma_list(given["splits"])
        return fn(*args, spec=DataSpec(**given), **kwargs)

    wrapper = functools.update_wrapper(wrapper, fn)
    for opt in reversed(options):
        wrapper = opt(wrapper)
    return wrapper
