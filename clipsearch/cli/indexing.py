"""`clipsearch index` and `clipsearch forget`: the commands that write a database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clipsearch.cli.app import command, say
from clipsearch.cli.messages import messages_on_stderr
from clipsearch.cli.options import (
    DbOption,
    DeviceOption,
    EngineOption,
    ModelOption,
    NoWaitOption,
    PrecisionOption,
    PretrainedOption,
    RayActorsOption,
    RayOption,
    RayShipBytesOption,
    TracebackOption,
    finite,
    is_ray_address,
    non_empty_path,
)
from clipsearch.config import DEFAULT_MAX_MEGAPIXELS
from clipsearch.errors import ExitCode, UsageError
from clipsearch.models.device import Device, Engine, Precision
from clipsearch.text import plural

if TYPE_CHECKING:
    from clipsearch.indexing.cluster import RayOptions
    from clipsearch.indexing.request import IndexStats
    from clipsearch.indexing.roots import OptionChanges

# The crawl options, remembered per folder (clipsearch.indexing.roots).
MaxMegapixelsOption = Annotated[float | None, typer.Option(
    "--max-megapixels", min=0.01, callback=finite, show_default=False,
    help=f"Skip images larger than this (default {DEFAULT_MAX_MEGAPIXELS:g}; remembered per folder).")]
IncludeHiddenOption = Annotated[bool | None, typer.Option(
    "--include-hidden/--no-include-hidden", show_default=False,
    help="Also index hidden files and folders (remembered per folder).")]
ExcludeOption = Annotated[list[str] | None, typer.Option(
    "--exclude", metavar="GLOB", help="Skip files and folders matching this glob (name or path; end it with / "
                                      "for folders only); repeatable; remembered per folder.")]
FollowSymlinksOption = Annotated[bool | None, typer.Option(
    "--follow-symlinks/--no-follow-symlinks", show_default=False,
    help="Follow symbolic links (loops are detected); remembered per folder.")]


RegionsOption = Annotated[bool | None, typer.Option(
    "--regions/--no-regions", show_default=False,
    help="Also embed a 3 x 3 grid of crops of each photo, so searches find small objects (about 10 times the "
         "model work; remembered by the database). --no-regions drops them.")]


@command(epilog="Examples:  clipsearch index ~/Photos  ·  clipsearch index /mnt/nas/photos --exclude '@eaDir/'  "
                    "·  clipsearch index   (refresh every folder indexed before)")
def index(
    paths: Annotated[list[Path] | None, typer.Argument(
        parser=non_empty_path(),
        metavar="[PATH]...", help="Folders (or single images) to index, recursively. None: every folder indexed "
                                  "before.")] = None,
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.auto,
    engine: EngineOption = Engine.auto,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Images per model call "
                                                   "(default: 32 on CPU, 64 on MPS, 256 on CUDA).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Decoding threads (default: one per "
                                                "CPU core).")] = None,
    max_megapixels: MaxMegapixelsOption = None,
    include_hidden: IncludeHiddenOption = None,
    exclude: ExcludeOption = None,
    no_exclude: Annotated[bool, typer.Option("--no-exclude", help="Forget the folder's remembered --exclude "
                                             "patterns.")] = False,
    follow_symlinks: FollowSymlinksOption = None,
    reindex: Annotated[bool, typer.Option("--reindex", help="Re-embed everything, e.g. to switch to another "
                                          "model.")] = False,
    thumbnails: Annotated[bool, typer.Option("--thumbnails", help="Also make the thumbnails of new photos (for "
                                             "previews, sheets and `web`) while they are decoded anyway.")] = False,
    regions: RegionsOption = None,
    ray: RayOption = None,
    ray_ship_bytes: RayShipBytesOption = False,
    ray_actors: RayActorsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and skipped files.")] = False,
    no_wait: NoWaitOption = False,
    show_traceback: TracebackOption = False,
) -> None:
    """Index photos: crawl folders, embed new and changed images, drop deleted ones.

    Incremental: unchanged files are not decoded again, and moved or renamed files keep their vectors. Each folder
    remembers its crawl options, so a plain `clipsearch index` later does what the first run did.
    """
    from clipsearch.cli.progress import index_reporter
    from clipsearch.cli.searching import open_library
    from clipsearch.models.runtime import wants_openvino

    wants_openvino(engine, device, precision)  # an impossible choice is said before any crawl
    changes = _crawl_changes(include_hidden, follow_symlinks, exclude, no_exclude, max_megapixels)
    library = open_library(db)
    with index_reporter(quiet) as reporter:
        stats = library.index(paths or (), model=model, pretrained=pretrained, device=device, precision=precision,
                              engine=engine, reindex=reindex, regions=regions, thumbnails=thumbnails,
                              batch_size=batch_size, workers=workers, wait=not no_wait, reporter=reporter,
                              changes=changes, ray=ray_options(ray, ray_ship_bytes, ray_actors))
    for line in summary(stats, quiet):
        say(line)
    if stats.interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)


def _crawl_changes(include_hidden: bool | None, follow_symlinks: bool | None, exclude: list[str] | None,
                   no_exclude: bool, max_megapixels: float | None) -> OptionChanges:
    from clipsearch.indexing.roots import OptionChanges

    if exclude and no_exclude:
        raise UsageError("--exclude and --no-exclude contradict each other: give one")
    return OptionChanges(include_hidden=include_hidden, follow_symlinks=follow_symlinks,
                         excludes=() if no_exclude else tuple(exclude) if exclude else None,
                         max_megapixels=max_megapixels)


def ray_options(address: str | None, ship_bytes: bool, actors: int | None) -> RayOptions | None:
    if address is None:
        if ship_bytes or actors:
            raise UsageError("--ray-ship-bytes and --ray-actors go with --ray")
        return None
    if not is_ray_address(address):
        raise UsageError(f"--ray {address}: not a Ray address (auto, local, HOST:PORT or ray://HOST:PORT)")
    from clipsearch.indexing.cluster import RayOptions

    return RayOptions(address, ship_bytes, actors)


def summary(stats: IndexStats, quiet: bool) -> list[str]:
    """The closing lines of `index`: the counts, what was passed over, and a finished model switch."""
    lines = []
    if stats.switched_to:
        lines.append(f"switched to {stats.switched_to}")
    if not quiet or stats.interrupted:
        skipped = f"skipped {stats.skipped}"
        if stats.skipped_remembered:
            skipped += (f" ({stats.skipped_remembered} known from earlier runs: `clipsearch status --skipped` "
                        "lists them)")
        lines.append(f"{'interrupted: ' if stats.interrupted else ''}indexed {stats.indexed}, unchanged "
                     f"{stats.unchanged}, moved {stats.moved}, removed {stats.removed}, {skipped}, in "
                     f"{stats.seconds:.1f} s")
    if stats.ignored and not quiet:
        kinds = ", ".join(f"{count} {'RAW file' if kind == 'RAW' else kind}{'s' if count != 1 else ''}"
                          for kind, count in sorted(stats.ignored.items()))
        lines.append(f"ignored {kinds}: clipsearch reads JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC and AVIF "
                     "(docs/index.md, \"Photo formats\")")
    return lines


@command(epilog="Examples:  clipsearch forget ~/Photos/private  ·  clipsearch forget ~/Photos/img_0001.jpg")
def forget(
    paths: Annotated[list[Path], typer.Argument(
        parser=non_empty_path(),
        metavar="PATH...", help="Files or folders to remove from the database (the files themselves are not "
                                "touched).")],
    db: DbOption = None,
    no_wait: NoWaitOption = False,
    show_traceback: TracebackOption = False,
) -> None:
    """Remove files or whole folders from the database. Exit code 1 if nothing matched."""
    from clipsearch.cli.searching import open_library

    with messages_on_stderr():  # "waiting for ... to finish writing"
        forgotten = open_library(db).forget(paths, wait=not no_wait)
    folders = f" and {plural(forgotten.roots, 'indexed folder')}" if forgotten.roots else ""
    say(f"forgot {plural(forgotten.files, 'file')}{folders}")
    if not forgotten.files and not forgotten.roots:
        raise typer.Exit(ExitCode.NOTHING_FOUND)
