"""`clipsearch locate`: where in each photo a text fits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clipsearch.cli.app import blas_single_threaded, command, say
from clipsearch.cli.bundles import bundled
from clipsearch.cli.options import DbOption, DeviceOption, Listing, Sheet, TracebackOption, data_dir, non_empty_path
from clipsearch.errors import ExitCode
from clipsearch.models.device import Device
from clipsearch.models.identity import ModelChoice
from clipsearch.text import visible

if TYPE_CHECKING:
    from clipsearch.insight.locate import Located


@command(epilog="Examples:  clipsearch locate cat IMG_0042.jpg  ·  clipsearch query cat -n 20 | clipsearch locate cat "
                "- --contact-sheet cats.jpg  ·  clipsearch locate receipt scan.jpg --detector "
                "hf:google/owlv2-base-patch16-ensemble")
@bundled("listing", Listing)
@bundled("sheet", Sheet)
def locate(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="What to look for.")],
    images: Annotated[list[str], typer.Argument(metavar="IMAGE...", parser=non_empty_path(str),
                                                help="Images; '-' reads paths from stdin, one "
                                                     "per line (chains after `query`).")],
    top: Annotated[int, typer.Option("--top", min=1, max=50, help="Boxes per image, best first.")] = 3,
    detector: Annotated[str | None, typer.Option(
        "--detector", metavar="hf:NAME|hf:DIR", help="An OWL-ViT or OWLv2 detector from transformers instead of "
                                                     "CLIP region search (needs no database).")] = None,
    *,
    listing: Listing,
    sheet: Sheet,
    db: DbOption = None,
    device: DeviceOption = Device.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Find where in each image TEXT fits: boxes x, y, w, h in the upright image's pixels, with scores.

    By default with the database's own CLIP model, scoring crops at several scales (docs/commands.md, "Where in a
    photo").
    """
    fmt = listing.listing_format()
    blas_single_threaded()
    from clipsearch.cli.searching import open_library, stdin_lines
    from clipsearch.output.located import render_located

    paths = stdin_lines("image paths") if images == ["-"] else images

    def skipped(path: str, reason: str) -> None:
        say(f"skipped {visible(path)}: {reason}")

    if detector is not None:
        from clipsearch.insight.detector import detect

        found = list(detect(detector, text, paths, top, device, skipped))
    else:
        with open_library(db, ModelChoice(device=device)) as library:
            found = library.locate(text, paths, top=top, skipped=skipped)
    render_located(found, fmt, sys.stdout.buffer)
    sys.stdout.flush()
    if sheet.contact_sheet is not None and found:
        _sheet(found, text, sheet, db)
    if not found:
        raise typer.Exit(ExitCode.NOTHING_FOUND)


def _sheet(found: list[Located], text: str, sheet: Sheet, db: Path | None) -> None:
    """One cell per box, the box drawn over its picture."""
    from clipsearch.cli.presenting import thumbnails_of
    from clipsearch.output.sheet import SheetOptions, write_contact_sheets
    from clipsearch.search.results import Result

    thumbnail = thumbnails_of(data_dir(db))
    cells = [Result(f.rank, f.score, f.path, f.width, f.height, None, text, box=f.box.as_list()) for f in found]

    def jpeg(path: str) -> bytes:
        data = thumbnail(path)
        if data is None:
            raise FileNotFoundError(path)
        return data

    written = write_contact_sheets(cells, [text], False, sheet.contact_sheet, jpeg,
                                   SheetOptions(sheet.columns, sheet.cell_size))
    say(f"wrote {', '.join(str(p) for p in written)}")
