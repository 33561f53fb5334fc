"""`clipsearch index` and `clipsearch forget`: the commands that write a database."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from clipsearch.cli.app import app, say
from clipsearch.cli.options import (
    DbOption,
    DeviceOption,
    ModelOption,
    NoWaitOption,
    PrecisionOption,
    PretrainedOption,
    TracebackOption,
    data_dir,
)
from clipsearch.cli.progress import index_reporter
from clipsearch.config import DEFAULT_MAX_MEGAPIXELS
from clipsearch.errors import ExitCode
from clipsearch.models.device import Device, Precision
from clipsearch.text import plural


@app.command(epilog="Examples:  clipsearch index ~/Photos  ·  clipsearch index /mnt/nas/photos --exclude '*/@eaDir/*'")
def index(
    paths: Annotated[list[Path], typer.Argument(help="Folders (or single images) to index, recursively.")],
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = Device.auto,
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
    from clipsearch.indexing.crawl import CrawlOptions
    from clipsearch.indexing.pipeline import index_paths
    from clipsearch.indexing.progress import IndexOptions

    options = IndexOptions(
        roots=tuple(str(p) for p in paths),
        crawl=CrawlOptions(include_hidden=include_hidden, excludes=tuple(exclude or ()),
                           follow_symlinks=follow_symlinks),
        model=model, pretrained=pretrained, reindex=reindex, device=device, precision=precision,
        batch_size=batch_size, workers=workers, max_megapixels=max_megapixels, wait_for_lock=not no_wait,
    )
    with index_reporter(quiet) as reporter:
        stats = index_paths(data_dir(db), options, reporter)
    if not quiet or stats.interrupted:
        say(f"{'interrupted: ' if stats.interrupted else ''}indexed {stats.indexed}, unchanged {stats.unchanged}, "
            f"moved {stats.moved}, removed {stats.removed}, skipped {stats.skipped}, in {stats.seconds:.1f} s")
    if stats.interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)


@app.command(epilog="Examples:  clipsearch forget ~/Photos/private  ·  clipsearch forget ~/Photos/img_0001.jpg")
def forget(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to remove from the database (the files "
                                                "themselves are not touched).")],
    db: DbOption = None,
    no_wait: NoWaitOption = False,
    show_traceback: TracebackOption = False,
) -> None:
    """Remove files or whole folders from the database."""
    from clipsearch.indexing.forget import forget_paths
    from clipsearch.indexing.progress import Reporter

    targets = [os.path.realpath(p) for p in paths]
    removed = forget_paths(data_dir(db), targets, wait=not no_wait, reporter=Reporter(message=say))
    say(f"forgot {plural(removed, 'file')}")
    if not removed:
        raise typer.Exit(ExitCode.NOTHING_FOUND)
