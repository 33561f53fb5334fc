"""What `query` and `similar` show besides their results on stdout: a contact sheet, terminal previews,
links, a self-contained HTML page, and warnings."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from clipsearch.cli.app import say
from clipsearch.cli.options import Presentation
from clipsearch.config import DataDir
from clipsearch.output.formats import OutputFormat, RenderOptions, Thumbnails, choose_format, render_results
from clipsearch.output.sheet import SheetOptions
from clipsearch.search.request import QueryKind
from clipsearch.search.results import SearchAnswer
from clipsearch.text import plural, visible


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder it was started in has been removed
        return None


def thumbnails_of(data_dir: DataDir) -> Thumbnails:
    """path -> the JPEG of its thumbnail (cached in the database folder), or None when it cannot be read."""
    from clipsearch.imaging.thumbnails import ThumbnailCache

    cache = ThumbnailCache(data_dir.thumbnails)

    def thumbnail(path: str) -> bytes | None:
        try:
            info = os.stat(path)
            return cache.thumbnail(path, info.st_size, info.st_mtime_ns)
        except Exception:  # gone or unreadable since it was indexed: shown without a picture
            return None

    return thumbnail


def present(kind: QueryKind, queries: list[str], answer: SearchAnswer, how: Presentation, data_dir: DataDir,
            ) -> list[str]:
    """Write the results to stdout as asked, and the extras beside; returns warnings for stderr."""
    fmt = choose_format(how.listing.output_format, how.listing.null, sys.stdout.isatty())
    several = len(queries) > 1
    cwd, home = _cwd(), os.path.expanduser("~")
    warnings: list[str] = []
    thumbnail = thumbnails_of(data_dir)
    if how.preview is not None and not sys.stdout.isatty():
        warnings.append("--preview shows pictures in a terminal only: ignored in a pipe or file")
    if how.preview is not None and sys.stdout.isatty() and fmt is OutputFormat.table:
        from clipsearch.output.preview import render_previews

        render_previews(answer.results, how.preview, thumbnail, several, cwd, home)
    else:
        from rich.console import Console

        width = Console().width if sys.stdout.isatty() else None
        context = RenderOptions(width, several, cwd, home, thumbnail=thumbnail, title=" · ".join(queries))
        warnings += render_results(answer.results, fmt, sys.stdout.buffer, context)
    sys.stdout.flush()
    _extras(kind, queries, answer, how, thumbnail)
    if answer.missing:
        warnings.append(f"left out {plural(answer.missing, 'result')} whose file no longer exists (`clipsearch "
                        "index` brings the database up to date)")
    return warnings


def _extras(kind: QueryKind, queries: list[str], answer: SearchAnswer, how: Presentation,
            thumbnail: Callable[[str], bytes | None]) -> None:
    if how.link_to is not None and answer.results:
        from clipsearch.output.links import link_results

        made = link_results(answer.results, how.link_to, several_queries=len(queries) > 1,
                            skipped=lambda path: say(f"--link-to: left out {visible(path)}: no longer the indexed "
                                                     "file (a link now, or not a regular file)"))
        say(f"linked {plural(made, 'result')} in {how.link_to}")
    if how.sheet.contact_sheet is not None:
        from clipsearch.output.sheet import write_contact_sheets

        def jpeg(path: str) -> bytes:
            data = thumbnail(path)
            if data is None:
                raise FileNotFoundError(path)
            return data

        with contextlib.suppress(BrokenPipeError):
            written = write_contact_sheets(answer.results, queries, kind is QueryKind.image, how.sheet.contact_sheet,
                                           jpeg, SheetOptions(how.sheet.columns, how.sheet.cell_size))
            say(f"wrote {', '.join(str(p) for p in written)}")
