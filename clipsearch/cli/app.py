"""The Typer app, and the one error boundary every command runs inside.

Whatever a command raises ends here: a ClipsearchError or a usage error as one `clipsearch: error:` line,
Ctrl-C as exit code 130, a closed pipe quietly, and anything else as one `internal error` line (with the
traceback under --traceback). Exit codes follow grep: 0 found, 1 nothing found, 2 error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer._click.core import Parameter
from typer._click.parser import _OptionParser
from typer._click.types import ParamType
from typer.core import TyperCommand, TyperGroup

from clipsearch import __version__
from clipsearch.config import CATALOG_FILENAME, DB_ENV_VAR, default_data_root
from clipsearch.errors import ClipsearchError, ExitCode, UsageError
from clipsearch.text import visible

CommandFunction = TypeVar("CommandFunction", bound=Callable[..., Any])

TRACEBACK_KEY = "clipsearch.traceback"
DB_KEY = "clipsearch.db"  # --db given before the command: `clipsearch --db DIR query ...`

err = Console(stderr=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    """One line on stderr, exactly as given (no markup, no highlighting)."""
    err.print(text, markup=False)


def fail(message: str) -> None:
    say(f"clipsearch: error: {visible(message)}")


# The order --help lists the commands in: the everyday ones first.
COMMAND_ORDER = ("index", "query", "similar", "locate", "classify", "tag", "tags", "duplicates", "status", "forget",
                 "serve", "web")


class _Boundary(TyperGroup):
    """The app's click group, with the error boundary around parsing and around every command."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        known = [name for name in COMMAND_ORDER if name in self.commands]
        return known + [name for name in self.commands if name not in known]

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        # **extra is Click's own signature: it goes on to make_context (Context settings), never read here.
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as error:  # a usage error: unknown option, bad value, missing argument
            fail(_usage_message(error))
            code = ExitCode.ERROR
        except typer.Abort:
            say("clipsearch: interrupted")
            code = ExitCode.INTERRUPTED
        code = int(code) if isinstance(code, int) else ExitCode.FOUND
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: typer.Context) -> Any:
        with _boundary(ctx):
            return super().invoke(ctx)


class ValueMayBeOmitted(ParamType):
    """The type of an option whose value may be left out: `--preview` alone means `--preview auto`.

    Click declares such an option with `is_flag=False, flag_value="auto"`, but the Click that Typer 0.28 vendors has
    no such thing (and typer.Option's flag_value is ignored), so _Parser below decides: the option takes the next
    word as its value when the word has the value's form (one of `choices`, or what `takes` accepts), else the value
    is `when_omitted` and the word stays an argument. A fixed rule about the word's spelling, never a guess from
    what the word names on disk: `query --preview sunset` previews a search for sunset.
    """

    name = "text"

    def __init__(self, when_omitted: str, choices: Sequence[str] = (),
                 takes: Callable[[str], bool] | None = None) -> None:
        self.when_omitted = when_omitted
        self.choices = tuple(choices)
        self._takes = takes

    def takes(self, word: str) -> bool:
        """Whether a word after the option is its value."""
        if word[:1] == "-" and len(word) > 1:
            return False
        return word in self.choices if self._takes is None else self._takes(word)

    def convert(self, value: Any, param: Parameter | None, ctx: typer.Context | None) -> Any:
        if self.choices and value not in self.choices:
            self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices))}", param, ctx)
        return value


class _Parser(_OptionParser):
    _explicit = False  # the value came with the option, `--preview=kitty`: Click puts it first in rargs

    def _match_long_opt(self, opt: str, explicit_value: str | None, state: Any) -> None:
        self._explicit = explicit_value is not None
        try:
            super()._match_long_opt(opt, explicit_value, state)
        finally:
            self._explicit = False

    def _get_value_from_state(self, option_name: str, option: Any, state: Any) -> Any:
        kind = getattr(option.obj, "type", None)
        if isinstance(kind, ValueMayBeOmitted) and not self._explicit:
            following = state.rargs[0] if state.rargs else None
            if following is None or not kind.takes(following):
                return kind.when_omitted
        return super()._get_value_from_state(option_name, option, state)


class Command(TyperCommand):
    """A command whose usage line reads `TEXT...`, not Typer's `{TEXT...}` for a required argument, and whose
    options may be declared with a value that can be left out (ValueMayBeOmitted)."""

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        return [piece.replace("{", "").replace("}", "") for piece in super().collect_usage_pieces(ctx)]

    def make_parser(self, ctx: typer.Context) -> _OptionParser:
        parser = _Parser(ctx)
        for param in self.get_params(ctx):
            param.add_to_parser(parser, ctx)
        return parser


def command(name: str | None = None, *, epilog: str | None = None, help: str | None = None,
            hidden: bool = False) -> Callable[[CommandFunction], CommandFunction]:
    """`@command(epilog=...)`: register a command of the app."""
    return app.command(name, cls=Command, epilog=epilog, help=help, hidden=hidden)


def _usage_message(error: typer.TyperException) -> str:
    format_message = getattr(error, "format_message", None)
    message = (format_message() if format_message else str(error)).strip().rstrip(".")
    message = " ".join(message[:1].lower() + message[1:] for message in [message] if message).replace("\n", " ")
    ctx = getattr(error, "ctx", None)
    return f"{message} (see `{ctx.command_path} --help`)" if ctx is not None else message


@contextlib.contextmanager
def _boundary(ctx: typer.Context) -> Iterator[None]:
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except ClipsearchError as error:
        _traceback_if_asked(ctx)
        fail(str(error))
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        say("clipsearch: interrupted")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except BrokenPipeError:
        # The reader went away (`| head`): what it wanted it has. Stop quietly, and keep Python from complaining
        # when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(ExitCode.FOUND) from None
    except Exception as error:
        _traceback_if_asked(ctx)
        hint = "" if ctx.meta.get(TRACEBACK_KEY) else " (rerun with --traceback for details)"
        say(f"clipsearch: internal error: {type(error).__name__}: {visible(str(error))}{hint}")
        raise typer.Exit(ExitCode.ERROR) from None


def blas_single_threaded() -> None:
    """One BLAS thread for query work: a query's matrices are small, and OpenBLAS threads that spin on a busy
    machine (say, beside an `index` run) made a text embedding take seconds.

    numpy (and so its OpenBLAS) is loaded by the time a command runs, long past reading OPENBLAS_NUM_THREADS, so
    the limit is set in the loaded library itself. One the user set in OPENBLAS_NUM_THREADS is left alone.
    """
    if "OPENBLAS_NUM_THREADS" in os.environ:
        return
    import numpy  # noqa: F401 (the BLAS to limit must be loaded first)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _traceback_if_asked(ctx: typer.Context) -> None:
    if ctx.meta.get(TRACEBACK_KEY):
        traceback.print_exc()


app = typer.Typer(
    name="clipsearch",
    cls=_Boundary,
    help="Find your photos by describing them, or by example. Local and private: nothing leaves your machine.",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def non_empty_path(kind: type = Path, *, file_okay: bool = True, dir_okay: bool = True) -> Callable[[str], Any]:
    """The parser of every path argument and option (a Path, or a str naming an image). It sees the raw word, so
    it can refuse "", which Typer's own Path type turns into Path('.'), the current folder."""

    def parse(value: str) -> Any:
        if value == "":
            raise typer.BadParameter("an empty path names nothing (write . for the current folder)")
        if not file_okay and Path(value).is_file():
            raise typer.BadParameter(f"{value} is a file, not a folder")
        if not dir_okay and Path(value).is_dir():
            raise typer.BadParameter(f"{value} is a folder, not a file")
        return kind(value)

    return parse


def _database_folder(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """--db before the command or after it (after wins), or $CLIPSEARCH_DB. It names a folder: say so plainly when
    it names a file, blaming the flag or the variable it came from."""
    source = ctx.get_parameter_source(param.name or "db")
    on_the_line = source is not None and source.name == "COMMANDLINE"
    if ctx.parent is None:  # the app's own --db, before the command: the command's own --db, if any, wins
        if on_the_line:
            ctx.meta[DB_KEY] = value
        return value
    if not on_the_line and DB_KEY in ctx.meta:
        value, on_the_line = ctx.meta[DB_KEY], True
    if value is None or not value.is_file():
        return value
    given = "--db" if on_the_line or source is None or source.name != "ENVIRONMENT" else f"${DB_ENV_VAR}"
    if value.name == CATALOG_FILENAME:
        raise UsageError(f"{given} takes the database folder, not its catalogue: use {value.parent}")
    raise UsageError(f"{given} {value} is a file; it must name a folder (the database is the whole folder)")


DbOption = Annotated[Path | None, typer.Option(
    "--db", envvar=DB_ENV_VAR, show_envvar=True, callback=_database_folder, metavar="DIR", parser=non_empty_path(),
    help=f"Database folder (default: {default_data_root()}).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clipsearch {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
    db: DbOption = None,
) -> None:
    """Find your photos by describing them, or by example. Local and private: nothing leaves your machine."""
    if ctx.invoked_subcommand is None:  # `clipsearch` alone: the help, on stdout, and success
        typer.echo(ctx.get_help())
        raise typer.Exit(ExitCode.FOUND)
