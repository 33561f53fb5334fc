"""`--preview`: each result's thumbnail beside its row, in the terminal.

Terminals that speak an inline-image protocol get real pictures: kitty's graphics protocol and sixel
through textual-image's Rich renderables, and iTerm2's inline images (which WezTerm speaks too), written
here because textual-image does not speak that protocol. Every other terminal gets Unicode half blocks
in 24-bit colour. The protocol is chosen from what the terminal says it is (TERM, TERM_PROGRAM, kitty's
own variable) and, for sixel, by asking it; `--preview=kitty|iterm|sixel|blocks` forces one.
"""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from enum import Enum

from PIL import Image
from rich.console import Console

from clipsearch.output.table import results_renderable
from clipsearch.search.results import Result

PREVIEW_COLUMNS = 12  # terminal cells a thumbnail spans


class PreviewMode(str, Enum):
    auto = "auto"
    kitty = "kitty"
    iterm = "iterm"
    sixel = "sixel"
    blocks = "blocks"


def detect(environ: Mapping[str, str]) -> PreviewMode:
    """The best protocol the terminal speaks, judged from its environment (and, for sixel, by asking it)."""
    term, program = environ.get("TERM", ""), environ.get("TERM_PROGRAM", "")
    if environ.get("TMUX"):
        return PreviewMode.blocks  # tmux passes inline images only when configured to: blocks always show
    if environ.get("KITTY_WINDOW_ID") or term == "xterm-kitty" or program == "ghostty":
        return PreviewMode.kitty
    if program in ("iTerm.app", "WezTerm") or environ.get("LC_TERMINAL") == "iTerm2":
        return PreviewMode.iterm
    try:
        from textual_image.renderable import sixel

        if sixel.query_terminal_support():
            return PreviewMode.sixel
    except Exception:  # a terminal that does not answer, or no textual-image: half blocks work everywhere
        pass
    return PreviewMode.blocks


def _renderable(jpeg: bytes, mode: PreviewMode) -> object:
    picture = Image.open(io.BytesIO(jpeg))
    if mode is PreviewMode.kitty:
        from textual_image.renderable.tgp import Image as Picture
    elif mode is PreviewMode.sixel:
        from textual_image.renderable.sixel import Image as Picture
    else:
        from textual_image.renderable.halfcell import Image as Picture
    return Picture(picture, width=PREVIEW_COLUMNS, height="auto")


def _iterm_inline(jpeg: bytes) -> str:
    encoded = base64.b64encode(jpeg).decode("ascii")
    return (f"\x1b]1337;File=inline=1;size={len(jpeg)};width={PREVIEW_COLUMNS};preserveAspectRatio=1:"
            f"{encoded}\x07")


def render_previews(results: Sequence[Result], mode: PreviewMode, thumbnail: Callable[[str], bytes | None],
                    show_query: bool, cwd: str | None, home: str | None, console: Console | None = None) -> None:
    """Print the results with their thumbnails to the terminal (stdout)."""
    console = console or Console(highlight=False, emoji=False, markup=False)
    if mode is PreviewMode.auto:
        mode = detect(os.environ)
    if mode is PreviewMode.iterm:
        for result in results:
            jpeg = thumbnail(result.path)
            if jpeg:
                sys.stdout.write(_iterm_inline(jpeg) + "\n")
                sys.stdout.flush()
            console.print(results_renderable([result], False, console.width, cwd, home))
        return
    previews = []
    for result in results:
        jpeg = thumbnail(result.path)
        previews.append(_renderable(jpeg, mode) if jpeg else "")
    console.print(results_renderable(results, show_query, console.width, cwd, home, previews, PREVIEW_COLUMNS))
