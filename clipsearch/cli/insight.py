"""`clipsearch classify`, `tag`, `tags` and `duplicates`: what the library holds, from its stored vectors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from clipsearch.cli.app import blas_single_threaded, command, say
from clipsearch.cli.bundles import bundled
from clipsearch.cli.options import (
    DbOption,
    DeviceOption,
    Listing,
    NoWaitOption,
    TracebackOption,
    WithinOption,
    finite,
    non_empty_path,
)
from clipsearch.errors import ExitCode, UsageError
from clipsearch.models.device import Device
from clipsearch.models.identity import ModelChoice


def _width() -> int | None:
    from rich.console import Console

    return Console().width if sys.stdout.isatty() else None


def _read_lines(path: Path | None, what: str) -> list[str] | None:
    if path is None:
        return None
    try:
        return (sys.stdin if str(path) == "-" else path.open(encoding="utf-8")).read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{what} {path}: cannot read it ({error})") from error


@command(epilog="Examples:  clipsearch classify IMG_0042.jpg --labels 'cat,dog,bird'  ·  clipsearch classify "
                "~/Photos/2023 --labels-file kinds.txt --top 1 -f jsonl | jq -r 'select(.label==\"receipt\") | .path'")
@bundled("listing", Listing)
def classify(
    images: Annotated[list[str], typer.Argument(
        parser=non_empty_path(str),
        metavar="IMAGE...", help="Images, or folders (every indexed image under them, nothing decoded). '-' "
                                 "reads paths from stdin.")],
    labels: Annotated[str | None, typer.Option("--labels", metavar="A,B,C", help="The labels, comma-separated.")]
    = None,
    labels_file: Annotated[Path | None, typer.Option("--labels-file", metavar="FILE", parser=non_empty_path(),
                                                     help="The labels, one per line.")] = None,
    template: Annotated[list[str] | None, typer.Option(
        "--template", metavar="TEXT", help="A prompt with {} for the label, e.g. 'a photo of a {}.'; repeatable: "
                                           "replaces the default ensemble.")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Labels per image.")] = 5,
    *,
    listing: Listing,
    db: DbOption = None,
    device: DeviceOption = Device.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Label images zero-shot: for each, the labels ranked by probability."""
    fmt = listing.listing_format()
    blas_single_threaded()
    from clipsearch.cli.searching import open_library, stdin_lines
    from clipsearch.insight.classify import parse_labels
    from clipsearch.output.insight import render_classifications

    chosen = parse_labels(labels, _read_lines(labels_file, "--labels-file"))
    if len(chosen) == 1:
        say("clipsearch: warning: with one label, its probability is always 1: give the others it competes with")
    targets = stdin_lines("image paths") if images == ["-"] else images
    with open_library(db, ModelChoice(device=device)) as library:
        results = library.classify(targets, chosen, templates=tuple(template or ()), top=top)
    render_classifications(results, fmt, sys.stdout.buffer, _width())


@command(epilog="Examples:  clipsearch tag  ·  clipsearch tag --vocabulary my-words.txt  ·  clipsearch query beach "
                "--tag dog")
def tag(
    vocabulary: Annotated[Path | None, typer.Option(
        "--vocabulary", metavar="FILE", parser=non_empty_path(),
        help="Your own labels (docs/commands.md, 'Labels and tags'). Default: the built-in "
             "vocabulary of everyday photo concepts.")] = None,
    min_probability: Annotated[float | None, typer.Option(
        "--min-probability", metavar="P", callback=finite, help="How sure a label must be, within its group, to "
                                                                 "become a tag.")] = None,
    db: DbOption = None,
    no_wait: NoWaitOption = False,
    device: DeviceOption = Device.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Tag every photo from a vocabulary; later `index` runs tag new photos as they come."""
    blas_single_threaded()
    from clipsearch.cli.messages import messages_on_stderr
    from clipsearch.cli.searching import open_library

    with messages_on_stderr(), open_library(db, ModelChoice(device=device)) as library:
        report = library.tag(vocabulary, min_probability=min_probability, wait=not no_wait)
    say(f"tagged {report.tagged} of {report.photos} photos with {report.tags} tags from {report.labels} labels")


@command(epilog="Examples:  clipsearch tags  ·  clipsearch tags dog -n 20  ·  clipsearch tags receipt -0 | "
                "xargs -0 mv -t ~/Receipts")
@bundled("listing", Listing)
def tags(
    name: Annotated[str | None, typer.Argument(metavar="[TAG]", help="List the photos with this tag.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="At most this many.")] = None,
    *,
    listing: Listing,
    db: DbOption = None,
    show_traceback: TracebackOption = False,
) -> None:
    """List the tags with how many photos have each, or the photos with one tag, most probable first."""
    from clipsearch.cli.searching import open_library
    from clipsearch.output.insight import render_tag_counts, render_tagged

    fmt = listing.listing_format()
    library = open_library(db)
    if name is None:
        counts = library.tags()[:limit]
        render_tag_counts(counts, fmt, sys.stdout.buffer, _width())
        found = bool(counts)
    else:
        files = library.tagged(name)[:limit]
        render_tagged(name, files, fmt, sys.stdout.buffer, _width())
        found = bool(files)
    if not found:
        raise typer.Exit(ExitCode.NOTHING_FOUND)


@command(epilog="Examples:  clipsearch duplicates  ·  clipsearch duplicates --similar --in ~/Photos/2023  ·  "
                "clipsearch duplicates -f json | jq -r '.[] | .paths[1:][]'")
@bundled("listing", Listing)
def duplicates(
    threshold: Annotated[float | None, typer.Option(
        "--threshold", metavar="S", callback=finite, help="The cosine at and above which two photos are versions "
                                                           "of one picture. Default: measured for the database's "
                                                           "model.")] = None,
    within: WithinOption = None,
    include_similar: Annotated[bool, typer.Option("--similar", help="Also show groups of different shots of one "
                                                  "moment (bursts, retakes).")] = False,
    *,
    listing: Listing,
    db: DbOption = None,
    show_traceback: TracebackOption = False,
) -> None:
    """Find exact copies and other versions of the same picture (and, with --similar, bursts)."""
    blas_single_threaded()
    from clipsearch.cli.searching import open_library
    from clipsearch.output.insight import render_duplicates

    with open_library(db) as library:
        groups = library.duplicates(within=within or (), include_similar=include_similar, threshold=threshold)
    render_duplicates(groups, listing.listing_format(), sys.stdout.buffer, _width())
    if not groups:
        raise typer.Exit(ExitCode.NOTHING_FOUND)
