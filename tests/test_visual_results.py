"""Seeing results: contact sheets, `-f html` pages and terminal previews, read back as a user would see them."""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import IndexedLibrary, run_cli
from PIL import Image

from clipsearch.imaging.thumbnails import thumbnail_of_file
from clipsearch.output.preview import PreviewMode, detect
from clipsearch.output.sheet import SheetOptions, cell_box

REPO = Path(__file__).resolve().parent.parent


def top_results(indexed_library: IndexedLibrary, query: str, n: int) -> list[dict]:
    result = run_cli("query", query, "--db", indexed_library.db, "-n", n, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_contact_sheet_holds_the_results_in_rank_order(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    sheet_file = tmp_path / "red.png"
    result = run_cli("query", "a red circle", "--db", indexed_library.db, "-n", 7, "--columns", 5,
                     "--cell-size", 200, "--contact-sheet", sheet_file, "-f", "json")
    assert result.exit_code == 0, result.stderr
    results = json.loads(result.stdout)  # the normal output still goes to stdout
    assert len(results) == 7 and f"wrote {sheet_file}" in result.stderr
    sheet = Image.open(sheet_file).convert("RGB")
    options, header = SheetOptions(columns=5, cell=200), 50
    # Seven results in five columns: two rows of 200-pixel cells with their captions.
    assert sheet.size == (cell_box(4, options, header)[2] + 12, cell_box(5, options, header)[3] + 34 + 12)
    pixels = np.asarray(sheet).astype(int)
    background = tuple(pixels[2, sheet.width - 3])
    drawn = [tuple(pixels[top + 1, left + 1]) != background
             for left, top, _, _ in (cell_box(index, options, header) for index in range(10))]
    assert drawn == [True] * 7 + [False] * 3
    # The top-left cell is the top result: its thumbnail, fitted into the cell, is what the sheet shows there.
    shown = [_fitted(results[rank]["path"], cell_box(0, options, header)) for rank in (0, 1)]
    assert _difference(pixels, *shown[0]) < 2.0
    assert _difference(pixels, *shown[1]) > 5.0  # and not the second one


def _fitted(path: str, box: tuple[int, int, int, int]) -> tuple[np.ndarray, int, int]:
    """A photo's thumbnail as a cell shows it, and where."""
    left, top, right, bottom = box
    picture = Image.open(io.BytesIO(thumbnail_of_file(path))).convert("RGB")
    picture.thumbnail((right - left, bottom - top), Image.Resampling.LANCZOS)
    x, y = left + (right - left - picture.width) // 2, top + (bottom - top - picture.height) // 2
    return np.asarray(picture).astype(int), x, y


def _difference(pixels: np.ndarray, picture: np.ndarray, x: int, y: int) -> float:
    """Mean pixel difference from the picture placed at (x, y); infinite where it would not fit the sheet there."""
    shown = pixels[y:y + picture.shape[0], x:x + picture.shape[1]]
    return float(np.abs(shown - picture).mean()) if shown.shape == picture.shape else float("inf")


def test_several_queries_give_one_sheet_each_in_the_format_of_the_name(indexed_library: IndexedLibrary,
                                                                       tmp_path: Path) -> None:
    target = tmp_path / "sheet.webp"
    result = run_cli("query", "-", "--db", indexed_library.db, "-n", 3, "--contact-sheet", target,
                     input="a red circle\na blue square\n")
    assert result.exit_code == 0, result.stderr
    assert not target.exists()
    for n in (1, 2):
        with Image.open(tmp_path / f"sheet-{n}.webp") as sheet:
            assert sheet.format == "WEBP"
    refused = run_cli("query", "a red circle", "--db", indexed_library.db, "--contact-sheet", tmp_path / "x.gif")
    assert refused.exit_code == 2 and refused.stderr.startswith("clipsearch: error: --contact-sheet")


def test_a_similar_sheet_shows_the_query_picture_in_its_header(indexed_library: IndexedLibrary,
                                                               tmp_path: Path) -> None:
    photo = indexed_library.photos[0]
    target = tmp_path / "like.jpg"
    result = run_cli("similar", photo.path, "--db", indexed_library.db, "-n", 4, "--contact-sheet", target)
    assert result.exit_code == 0, result.stderr
    sheet = np.asarray(Image.open(target).convert("RGB")).astype(int)
    header = sheet[6:58, 12:64]
    assert header.std() > 10  # a picture, not the flat background


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if "data-record" in values:
            self.records.append(json.loads(values["data-record"] or ""))
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag == "a":
            self.links.append(values.get("href") or "")
        self.urls += [value or "" for name, value in attrs if name in ("src", "href", "action")]


def test_html_is_one_self_contained_page_with_every_result(indexed_library: IndexedLibrary) -> None:
    expected = top_results(indexed_library, "a green square", 6)
    result = run_cli("query", "a green square", "--db", indexed_library.db, "-n", 6, "-f", "html")
    assert result.exit_code == 0, result.stderr
    page = _Page()
    page.feed(result.stdout)
    assert [{k: v for k, v in r.items() if k != "query"} for r in page.records] == expected
    assert len(page.images) == 6
    for source in page.images:
        assert source.startswith("data:image/jpeg;base64,")
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as thumbnail:
            assert max(thumbnail.size) == 320
    assert page.links == [Path(r["path"]).as_uri() for r in expected]
    assert all(url.startswith(("data:", "file:")) for url in page.urls)  # nothing from the network
    assert not {"script", "link", "iframe", "object"} & page.tags
    assert "http://" not in result.stdout and "https://" not in result.stdout


@pytest.mark.parametrize("command", [["tags"], ["duplicates"], ["locate", "a red circle", "photo.jpg"],
                                     ["classify", "photo.jpg", "--labels", "a,b"]])
def test_html_is_refused_in_one_line_where_there_are_no_results_to_show(indexed_library: IndexedLibrary,
                                                                      command: list[str]) -> None:
    result = run_cli(*command, "--db", indexed_library.db, "-f", "html")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("clipsearch: error: -f html is for `query` and `similar`, which have the "
                                     "thumbnails it embeds")


def test_preview_in_a_pipe_is_ignored_with_one_warning(indexed_library: IndexedLibrary) -> None:
    done = subprocess.run([sys.executable, "-m", "clipsearch", "query", "a red circle", "--db", indexed_library.db,
                           "-n", "3", "--preview"], cwd=REPO, capture_output=True, env={**os.environ,
                                                                                        "CLIPSEARCH_NO_SERVER": "1"})
    assert done.returncode == 0, done.stderr
    assert b"\x1b" not in done.stdout
    assert len(done.stdout.decode().splitlines()) == 3  # paths, as any pipe gets
    warnings = [line for line in done.stderr.decode().splitlines() if "--preview" in line]
    assert warnings == ["clipsearch: warning: --preview shows pictures in a terminal only: ignored in a pipe or file"]


@pytest.mark.parametrize(("environ", "mode"), [
    ({"TERM": "xterm-kitty"}, PreviewMode.kitty), ({"KITTY_WINDOW_ID": "1"}, PreviewMode.kitty),
    ({"TERM_PROGRAM": "WezTerm"}, PreviewMode.iterm), ({"TERM_PROGRAM": "iTerm.app"}, PreviewMode.iterm),
    ({"TMUX": "/tmp/tmux-0/default,1,0", "TERM_PROGRAM": "iTerm.app"}, PreviewMode.blocks),
])
def test_the_terminal_decides_the_picture_protocol(environ: dict[str, str], mode: PreviewMode) -> None:
    assert detect(environ) is mode


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_preview_draws_half_blocks_in_a_terminal(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    expected = top_results(indexed_library, "a red circle", 3)
    session = f"cs-preview-{os.getpid()}"
    done_mark = tmp_path / "done"
    command = (f"CLIPSEARCH_NO_SERVER=1 {shlex.quote(sys.executable)} -m clipsearch query 'a red circle' "
               f"--db {shlex.quote(str(indexed_library.db))} -n 3 --preview; touch {shlex.quote(str(done_mark))}; "
               "sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "60", "-c", str(REPO),
                    "env", "TERM=xterm-256color", "COLORTERM=truecolor", "sh", "-c", command], check=True)
    try:
        deadline = time.monotonic() + 120
        while not done_mark.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done_mark.exists(), "the query did not finish in the tmux pane"
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-e", "-t", session], capture_output=True,
                                text=True, check=True).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert "▄" in screen or "▀" in screen  # pictures drawn in half blocks
    assert "38;2;" in screen or "48;2;" in screen  # in 24-bit colour
    plain = subprocess.run(["sed", "-e", r"s/\x1b\[[0-9;]*m//g"], input=screen, capture_output=True,
                           text=True).stdout
    rows = [line for line in plain.splitlines() if "▀" in line and "0." in line]
    assert len(rows) == 3  # each result's row starts beside its picture
    for row, result in zip(rows, expected):
        assert f" {result['rank']}   {result['score']:.4f} " in row
