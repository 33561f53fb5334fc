"""The clipsearch command line: parse arguments, call the core, render. The one error boundary.

Core modules are imported inside the commands, and torch only where a model is loaded,
so `--help`, `status` and shell completion stay fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clipsearch import __version__
from clipsearch.config import (
    DB_ENV_VAR,
    DEFAULT_MAX_MEGAPIXELS,
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    DEFAULT_RESULTS,
    NO_SERVER_ENV_VAR,
)
from clipsearch.errors import ClipsearchError, ExitCode
from clipsearch.render import visible

app = typer.Typer(
    name="clipsearch",
    help="Find your photos by describing them, or by example. Local and private: nothing leaves your machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    paths = "paths"


DbOption = Annotated[Path | None, typer.Option(
    "--db", envvar=DB_ENV_VAR, show_envvar=True, file_okay=False,
    help="Database folder (default: $XDG_DATA_HOME/clipsearch, i.e. ~/.local/share/clipsearch).")]
TracebackOption = Annotated[bool, typer.Option("--traceback", help="On error, show the full Python traceback.")]
ModelOption = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="NAME|CONFIG.json",
    help=f"open_clip model name, or the path to a model config JSON. Default: the database's model, "
         f"else {DEFAULT_MODEL}.")]
PretrainedOption = Annotated[str | None, typer.Option(
    "--pretrained", metavar="TAG|PATH",
    help=f"Weights: an open_clip pretrained tag, or a local checkpoint file. Default: the database's, "
         f"else {DEFAULT_PRETRAINED}.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps. auto picks cuda, then mps, "
                                                            "then cpu.")]
class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    int8 = "int8"


PrecisionOption = Annotated[Precision, typer.Option(
    "--precision", help="auto, fp32 or int8. auto: fp16 on CUDA; on a CPU, int8 weights for the image tower's "
                        "transformer MLPs (about 2x faster, embeddings within 0.9997 cosine of fp32).")]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="How many results per query.")]
MinScoreOption = Annotated[float | None, typer.Option("--min-score", help="Drop results below this cosine score.")]
WithinOption = Annotated[Path | None, typer.Option("--in", help="Only results under this folder.")]
FormatOption = Annotated[OutputFormat | None, typer.Option(
    "--format", "-f", help="Output format. Default: table on a terminal, paths in a pipe.")]
NullOption = Annotated[bool, typer.Option("--null", "-0", help="NUL-separated paths, for `xargs -0`.")]
NoWaitOption = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another process is writing "
                                                              "the database, instead of waiting.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clipsearch {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Find your photos by describing them, or by example. Local and private: nothing leaves your machine."""


@contextlib.contextmanager
def error_boundary(show_traceback: bool) -> Iterator[None]:
    """Every user-caused error ends here as one line on stderr and grep's exit codes."""
    try:
        yield
    except typer.Exit:
        raise
    except ClipsearchError as error:
        if show_traceback:
            traceback.print_exc()
        err.print(f"clipsearch: error: {visible(str(error))}", markup=False)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        err.print("clipsearch: interrupted", markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(ExitCode.FOUND) from None
    except Exception as error:
        if show_traceback:
            traceback.print_exc()
        err.print(f"clipsearch: internal error: {type(error).__name__}: {visible(str(error))} (rerun with "
                  "--traceback for details)", markup=False)
        raise typer.Exit(ExitCode.ERROR) from None


def _blas_single_threaded() -> None:
    """One BLAS thread for query work, set before numpy loads: a query's matrices are small, and OpenBLAS threads
    that spin on a busy machine (say, beside an `index` run) made a 50 ms text embedding take seconds."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _data_dir(db: Path | None):
    from clipsearch.config import resolve_data_dir

    return resolve_data_dir(db)


@app.command(epilog="Examples:  clipsearch index ~/Photos  ·  clipsearch index /mnt/nas/photos --exclude '*/@eaDir/*'")
def index(
    paths: Annotated[list[Path], typer.Argument(help="Folders (or single images) to index, recursively.")],
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = Precision.auto,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Images per model call "
                                                   "(default: 32 on CPU, 64 on MPS, 256 on CUDA).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Decoding threads (default: one per "
                                                "CPU core).")] = None,
    max_megapixels: Annotated[float, typer.Option("--max-megapixels", min=0.01, help="Skip images larger than "
                                                  "this.")] = DEFAULT_MAX_MEGAPIXELS,
    include_hidden: Annotated[bool, typer.Option("--include-hidden", help="Also index hidden files and "
                                                 "folders.")] = False,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", metavar="GLOB", help="Skip files and folders "
                                                      "matching this glob (name or path); repeatable.")] = None,
    follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", help="Follow symbolic links (loops are "
                                                  "detected).")] = False,
    reindex: Annotated[bool, typer.Option("--reindex", help="Re-embed everything, e.g. to switch to another "
                                          "model.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and skipped files.")] = False,
    no_wait: NoWaitOption = False,
    show_traceback: TracebackOption = False,
) -> None:
    """Index photos: crawl folders, embed new and changed images, drop deleted ones.

    Incremental: unchanged files are not decoded again, and moved or renamed files keep their vectors.
    """
    with error_boundary(show_traceback):
        from clipsearch.crawl import CrawlOptions
        from clipsearch.pipeline import IndexOptions, index_paths

        options = IndexOptions(
            roots=tuple(str(p) for p in paths),
            crawl=CrawlOptions(include_hidden=include_hidden, excludes=tuple(exclude or ()),
                               follow_symlinks=follow_symlinks),
            model=model, pretrained=pretrained, reindex=reindex, device=device, precision=precision.value,
            batch_size=batch_size,
            workers=workers, max_megapixels=max_megapixels, wait_for_lock=not no_wait,
        )
        with _index_reporter(quiet) as reporter:
            stats = index_paths(_data_dir(db), options, reporter)
        if not quiet or stats.interrupted:
            err.print(
                f"{'interrupted: ' if stats.interrupted else ''}indexed {stats.indexed}, unchanged {stats.unchanged}, "
                f"moved {stats.moved}, removed {stats.removed}, skipped {stats.skipped}, in {stats.seconds:.1f} s",
                markup=False,
            )
        if stats.interrupted:
            raise typer.Exit(ExitCode.INTERRUPTED)


@contextlib.contextmanager
def _index_reporter(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from clipsearch.pipeline import Reporter

    def skipped(path: str, reason: str) -> None:
        err.print(f"skipped {visible(path)}: {reason}", markup=False)

    def message(text: str) -> None:
        if not quiet:
            err.print(text, markup=False)

    if quiet or not err.is_terminal:
        yield Reporter(message=message, skipped=skipped)
        return
    progress = Progress(
        TextColumn("indexing"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err, transient=True,
    )
    task = progress.add_task("index", total=None, rate="")

    def started(total: int) -> None:
        progress.update(task, total=total)

    def advanced(count: int) -> None:
        progress.advance(task, count)
        elapsed = progress.tasks[0].elapsed or 0
        if elapsed:
            progress.update(task, rate=f"{progress.tasks[0].completed / elapsed:.1f} img/s")

    with progress:
        yield Reporter(message=lambda text: progress.console.print(text, markup=False),
                       skipped=lambda p, r: progress.console.print(f"skipped {visible(p)}: {r}", markup=False),
                       started=started, advanced=advanced)


def _read_stdin_lines() -> list[str]:
    return [line.rstrip("\r\n") for line in sys.stdin if line.strip()]


def _search_and_render(kind: str, queries: list[str], db: Path | None, model: str | None, pretrained: str | None,
                       device: str, precision: str, options, output_format: OutputFormat | None,
                       null: bool) -> None:
    from clipsearch.render import choose_format, render_results

    _blas_single_threaded()
    fmt = choose_format(output_format.value if output_format else None, null, sys.stdout.isatty())
    data_dir = _data_dir(db)
    results = None
    # A running `clipsearch serve` answers from memory; asking for another model, device or precision bypasses it.
    if (model, pretrained, device, precision) == (None, None, "auto", "auto") and not os.environ.get(NO_SERVER_ENV_VAR):
        from clipsearch.serve import ask

        results = ask(data_dir, kind, queries, options)
    if results is None:
        from clipsearch.search import Searcher

        searcher = Searcher(data_dir, model, pretrained, device, precision)
        try:
            results = searcher.texts(queries, options) if kind == "text" else searcher.images(queries, options)
        finally:
            searcher.close()
    width = None if not sys.stdout.isatty() else Console().width
    warnings = render_results(results, fmt, sys.stdout.buffer, console_width=width, show_query=len(queries) > 1)
    sys.stdout.flush()
    for warning in warnings:
        err.print(f"clipsearch: warning: {warning}", markup=False)
    if not results:
        if fmt == "table":
            err.print("no matches", markup=False)
        raise typer.Exit(ExitCode.NOTHING_FOUND)


@app.command(epilog="Examples:  clipsearch query sunset beach  ·  clipsearch query 'dog in snow' -n 5 -f paths | "
                    "xargs -d '\\n' cp -t /tmp/picks  ·  printf 'cat\\ndog\\n' | clipsearch query - -f jsonl")
def query(
    text: Annotated[list[str], typer.Argument(help="What to look for; words are joined. '-' reads one query "
                                              "per line from stdin.")],
    limit: LimitOption = DEFAULT_RESULTS,
    min_score: MinScoreOption = None,
    within: WithinOption = None,
    output_format: FormatOption = None,
    null: NullOption = False,
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = "auto",
    show_traceback: TracebackOption = False,
) -> None:
    """Find photos matching a description. Exit code 0 if something was found, 1 if not, 2 on error."""
    with error_boundary(show_traceback):
        from clipsearch.results import QueryOptions

        queries = _read_stdin_lines() if text == ["-"] else [" ".join(text)]
        options = QueryOptions(limit=limit, min_score=min_score, within=str(within) if within else None)
        _search_and_render("text", queries, db, model, pretrained, device, "auto", options, output_format, null)


@app.command(epilog="Examples:  clipsearch similar ~/Photos/2019/img_0042.jpg  ·  "
                    "clipsearch similar ~/Downloads/inspiration.png -n 20 -0 | xargs -0 ls -l")
def similar(
    images: Annotated[list[str], typer.Argument(help="Image files (indexed or not). '-' reads paths from stdin, "
                                                "one per line.")],
    limit: LimitOption = DEFAULT_RESULTS,
    min_score: MinScoreOption = None,
    within: WithinOption = None,
    include_self: Annotated[bool, typer.Option("--include-self", help="Keep an indexed query image in its own "
                                               "results.")] = False,
    output_format: FormatOption = None,
    null: NullOption = False,
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = Precision.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Find photos that look like the given ones."""
    with error_boundary(show_traceback):
        from clipsearch.results import QueryOptions

        queries = _read_stdin_lines() if images == ["-"] else images
        options = QueryOptions(limit=limit, min_score=min_score, within=str(within) if within else None,
                               include_self=include_self)
        _search_and_render("image", queries, db, model, pretrained, device, precision.value, options, output_format,
                           null)


@app.command(epilog="Examples:  clipsearch status  ·  clipsearch status --json | jq .images")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    db: DbOption = None,
    show_traceback: TracebackOption = False,
) -> None:
    """Show where the database is, which model it uses, and what it holds."""
    with error_boundary(show_traceback):
        from clipsearch.search import database_status

        report = database_status(_data_dir(db))
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
            return
        for label, value in report.lines():
            typer.echo(f"{label + ':':<14}{value}")


@app.command(epilog="Examples:  clipsearch forget ~/Photos/private  ·  clipsearch forget ~/Photos/img_0001.jpg")
def forget(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to remove from the database (the files "
                                                "themselves are not touched).")],
    db: DbOption = None,
    no_wait: NoWaitOption = False,
    show_traceback: TracebackOption = False,
) -> None:
    """Remove files or whole folders from the database."""
    with error_boundary(show_traceback):
        from clipsearch.pipeline import Reporter, forget_paths

        targets = [os.path.realpath(p) for p in paths]
        reporter = Reporter(message=lambda text: err.print(text, markup=False))
        removed = forget_paths(_data_dir(db), targets, wait=not no_wait, reporter=reporter)
        err.print(f"forgot {removed} file{'s' if removed != 1 else ''}", markup=False)
        if not removed:
            raise typer.Exit(ExitCode.NOTHING_FOUND)


@app.command(epilog="Examples:  clipsearch serve &  ·  clipsearch serve --idle-timeout 30  ·  "
                    "CLIPSEARCH_NO_SERVER=1 clipsearch query cat   (search without the server)")
def serve(
    db: DbOption = None,
    device: DeviceOption = "auto",
    idle_timeout: Annotated[float | None, typer.Option("--idle-timeout", min=0.01, metavar="MINUTES",
                                                       help="Exit after this long without a query.")] = None,
    show_traceback: TracebackOption = False,
) -> None:
    """Keep the model and index in memory: `query` and `similar` then answer in milliseconds.

    They use the server on their own whenever it runs for the same database, and search by themselves when it
    does not. Its socket is private to you. Stop it with Ctrl-C (or SIGTERM).
    """
    with error_boundary(show_traceback):
        _blas_single_threaded()
        from clipsearch.serve import SearchServer, ServeOptions

        data_dir = _data_dir(db)
        server = SearchServer(data_dir, ServeOptions(device, idle_timeout * 60 if idle_timeout else None))
        signal.signal(signal.SIGTERM, _stop_serving)
        err.print(f"loading {data_dir.root}", markup=False)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve(on_ready=lambda path: err.print(f"serving {data_dir.root} on {path} (Ctrl-C to stop)",
                                                         markup=False))
        err.print(f"stopped after answering {server.answered} request{'s' if server.answered != 1 else ''}",
                  markup=False)


def _stop_serving(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # Die quietly on a closed pipe rather than raising in the middle of output.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app()
