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
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from clipsearch import __version__
from clipsearch.errors import ClipsearchError, ExitCode
from clipsearch.text import visible

TRACEBACK_KEY = "clipsearch.traceback"

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

    def main(self, args: Sequence[str] | None = None, *rest: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        arguments = _optional_values(list(sys.argv[1:] if args is None else args))
        try:
            code = super().main(arguments, *rest, standalone_mode=False, **kwargs)
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


class Command(TyperCommand):
    """A command whose usage line reads `TEXT...`, not Typer's `{TEXT...}` for a required argument."""

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        return [piece.replace("{", "").replace("}", "") for piece in super().collect_usage_pieces(ctx)]


def command(**settings: Any) -> Any:
    """`@command(epilog=...)`: register a command of the app."""
    return app.command(cls=Command, **settings)


# Options whose value may be left out (`--preview` alone means `--preview=auto`), which Typer cannot declare: the
# default, and which following words are taken as the option's value rather than as an argument.
OPTIONAL_VALUES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "--preview": ("auto", lambda word: word in ("auto", "kitty", "iterm", "sixel", "blocks")),
    "--ray": ("auto", lambda word: word in ("auto", "local") or (":" in word and not os.path.exists(word))),
}


def _optional_values(arguments: list[str]) -> list[str]:
    if "--" in arguments:
        end = arguments.index("--")
        return _optional_values(arguments[:end]) + arguments[end:]
    result: list[str] = []
    words = iter(enumerate(arguments))
    for index, word in words:
        if word not in OPTIONAL_VALUES:
            result.append(word)
            continue
        default, takes = OPTIONAL_VALUES[word]
        following = arguments[index + 1] if index + 1 < len(arguments) else None
        if following is not None and takes(following):
            result.append(f"{word}={following}")
            next(words)
        else:
            result.append(f"{word}={default}")
    return result


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
    """One BLAS thread for query work, set before numpy loads: a query's matrices are small, and OpenBLAS threads
    that spin on a busy machine (say, beside an `index` run) made a text embedding take seconds."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clipsearch {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Find your photos by describing them, or by example. Local and private: nothing leaves your machine."""
    if ctx.invoked_subcommand is None:  # `clipsearch` alone: the help, on stdout, and success
        typer.echo(ctx.get_help())
        raise typer.Exit(ExitCode.FOUND)
