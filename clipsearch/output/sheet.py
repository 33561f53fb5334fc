"""Contact sheets: the results of a query in one image, to open, print or send.

Each cell holds a photo upright (EXIF applied, aspect kept) over its rank, score and file name; the
query (its text, or the query image itself) heads the sheet. Text is drawn with Pillow's own font, which
ships inside Pillow, at a size that reads well at the default cell size; names are shortened in the
middle and control characters made visible. The format follows the file's extension: .jpg, .png, .webp.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from clipsearch.errors import UsageError
from clipsearch.search.results import Result
from clipsearch.text import visible

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
DEFAULT_COLUMNS = 5
DEFAULT_CELL = 256
BACKGROUND = (24, 24, 28)
CELL_BACKGROUND = (40, 40, 46)
TEXT = (235, 235, 235)
DIM = (160, 160, 170)
MARGIN = 12
BOX_COLOUR = (255, 214, 0)

Thumbnail = Callable[[str], bytes]  # path -> JPEG bytes of its thumbnail


@dataclass(frozen=True)
class SheetOptions:
    columns: int = DEFAULT_COLUMNS
    cell: int = DEFAULT_CELL


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """`text` shortened in the middle with "…" until it fits `width` pixels."""
    text = visible(text)
    if draw.textlength(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 3:
        keep -= 1
        head = (keep + 1) // 2
        candidate = text[:head] + "…" + text[len(text) - (keep - head):]
        if draw.textlength(candidate, font=font) <= width:
            return candidate
    return "…"


Rectangle = tuple[int, int, int, int]


def _paste_fitted(sheet: Image.Image, picture: Image.Image, box: Rectangle) -> Rectangle:
    """Paste `picture` into `box`, fitted and centred; returns where it went (x, y, w, h)."""
    left, top, right, bottom = box
    picture = picture.convert("RGB")
    picture.thumbnail((right - left, bottom - top), Image.Resampling.LANCZOS)
    x = left + (right - left - picture.width) // 2
    y = top + (bottom - top - picture.height) // 2
    sheet.paste(picture, (x, y))
    return x, y, picture.width, picture.height


def _draw_region(draw: ImageDraw.ImageDraw, placed: Rectangle, result: Result) -> None:
    """The result's box (in the upright photo's pixels) over its picture, as placed on the sheet."""
    if result.box is None or not result.width or not result.height:
        return
    x, y, w, h = placed
    scale_x, scale_y = w / result.width, h / result.height
    bx, by, bw, bh = result.box
    corners = (x + bx * scale_x, y + by * scale_y, x + (bx + bw) * scale_x, y + (by + bh) * scale_y)
    draw.rectangle(corners, outline=(0, 0, 0), width=4)
    draw.rectangle(corners, outline=BOX_COLOUR, width=2)


def cell_box(index: int, options: SheetOptions, header: int) -> tuple[int, int, int, int]:
    """Where result `index` (0-based) is drawn: the picture's area within its cell, in sheet pixels."""
    caption = max(34, options.cell // 6)
    row, column = divmod(index, options.columns)
    left = MARGIN + column * (options.cell + MARGIN)
    top = header + MARGIN + row * (options.cell + caption + MARGIN)
    return left, top, left + options.cell, top + options.cell


def _header(draw: ImageDraw.ImageDraw, sheet: Image.Image, query: str, query_picture: Image.Image | None,
            height: int) -> None:
    font = _font(max(16, height // 3))
    x = MARGIN
    if query_picture is not None:
        _paste_fitted(sheet, query_picture, (MARGIN, MARGIN // 2, MARGIN + height - MARGIN, height - MARGIN // 2))
        x += height
    label = f"similar to {os.path.basename(query)}" if query_picture is not None else query
    draw.text((x, height // 2), _fit_text(draw, label, font, sheet.width - x - MARGIN), fill=TEXT, font=font,
              anchor="lm")


def draw_sheet(results: Sequence[Result], thumbnail: Thumbnail, query: str,
               query_picture: Image.Image | None = None, options: SheetOptions = SheetOptions()) -> Image.Image:
    """The sheet of `results` (of one query) as a picture."""
    columns = max(1, min(options.columns, len(results) or 1))
    options = SheetOptions(columns, options.cell)
    rows = max(1, -(-len(results) // columns))
    header = max(48, options.cell // 4)
    caption = max(34, options.cell // 6)
    width = MARGIN + columns * (options.cell + MARGIN)
    height = header + MARGIN + rows * (options.cell + caption + MARGIN)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    _header(draw, sheet, query, query_picture, header)
    small = _font(max(12, caption // 2 - 2))
    for index, result in enumerate(results):
        left, top, right, bottom = cell_box(index, options, header)
        draw.rectangle((left, top, right - 1, bottom - 1), fill=CELL_BACKGROUND)
        try:
            placed = _paste_fitted(sheet, Image.open(io.BytesIO(thumbnail(result.path))), (left, top, right, bottom))
            _draw_region(draw, placed, result)
        except Exception:  # a file gone or unreadable since it was indexed: its cell stays empty, with its name
            draw.text(((left + right) // 2, (top + bottom) // 2), "not readable", fill=DIM, font=small, anchor="mm")
        draw.text((left, bottom + 2), f"#{result.rank}  {result.score:.3f}", fill=TEXT, font=small)
        name = _fit_text(draw, os.path.basename(result.path), small, options.cell)
        draw.text((left, bottom + 2 + caption // 2), name, fill=DIM, font=small)
    return sheet


def sheet_paths(target: Path, count: int) -> list[Path]:
    """One file per query: the path itself for one query, NAME-1.EXT, NAME-2.EXT, ... for several."""
    if target.suffix.lower() not in FORMATS:
        raise UsageError(f"--contact-sheet {target}: end it with {', '.join(sorted(FORMATS))} to choose the format")
    if count == 1:
        return [target]
    return [target.with_name(f"{target.stem}-{n}{target.suffix}") for n in range(1, count + 1)]


def save_sheet(sheet: Image.Image, path: Path) -> None:
    try:
        sheet.save(path, FORMATS[path.suffix.lower()], **({"quality": 90} if path.suffix.lower() != ".png" else {}))
    except OSError as error:
        raise UsageError(f"--contact-sheet {path}: cannot write it ({error.strerror or error})") from error


def write_contact_sheets(results: Sequence[Result], queries: Sequence[str], images: bool, target: Path,
                         thumbnail: Thumbnail, options: SheetOptions = SheetOptions()) -> list[Path]:
    """One sheet per query (see sheet_paths); `images`: the queries are image paths, drawn in the header."""
    from clipsearch.imaging.decode import decode_image, read_file

    written = []
    for query, path in zip(queries, sheet_paths(target, len(queries))):
        picture = None
        if images:
            try:
                picture = decode_image(read_file(query), target_size=options.cell).image
            except Exception:  # the header then names the query without its picture
                picture = None
        chosen = [r for r in results if r.query in (query, None)] if len(queries) > 1 else list(results)
        save_sheet(draw_sheet(chosen, thumbnail, query, picture, options), path)
        written.append(path)
    return written
