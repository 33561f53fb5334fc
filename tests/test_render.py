"""Every output format reads back to the same results, awkward file names included."""

from __future__ import annotations

import csv
import io
import json
import os
import re

import pytest
from helpers import run_cli

from clipsearch.output.formats import OutputFormat, RenderOptions, choose_format, render_results
from clipsearch.output.records import NEWLINE_WARNING
from clipsearch.search.results import Result

AWKWARD_PATHS = [
    "/photos/plain.jpg",
    "/photos/a, b.jpg",
    '/photos/say "cheese".jpg',
    "/photos/two\nlines.jpg",
    "/photos/tab\there.jpg",
    "/photos/back\\slash.jpg",
    "/photos/été/東京 🗼.jpg",
    "/photos/[bold]markup[/bold].jpg",
    os.fsdecode(b"/p/caf\xe9.jpg"),
]


def make_results(paths: list[str], query: str | None = None) -> list[Result]:
    return [
        Result(
            rank=i + 1,
            score=0.9 - i * 0.0123456,
            path=p,
            width=4032 if i % 2 == 0 else None,
            height=3024 if i % 2 == 0 else None,
            taken_at="2019-07-14T12:30:05" if i % 3 == 0 else None,
            query=query,
        )
        for i, p in enumerate(paths)
    ]


def render(results: list[Result], fmt: str, **kwargs: object) -> tuple[bytes, list[str]]:
    out = io.BytesIO()
    warnings = render_results(results, OutputFormat(fmt), out, RenderOptions(**kwargs))
    return out.getvalue(), warnings


def expected_record(r: Result) -> dict[str, object]:
    return {
        "rank": r.rank,
        "score": round(r.score, 4),
        "path": r.path,
        "width": r.width,
        "height": r.height,
        "taken_at": r.taken_at,
        "camera": r.camera,
    }


def tsv_unescape(field: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[m.group(1)], field)


def test_json_round_trips_every_path() -> None:
    results = make_results(AWKWARD_PATHS)
    data, warnings = render(results, "json")
    data.decode("utf-8")  # valid UTF-8 even for the name that is not
    assert json.loads(data) == [expected_record(r) for r in results]
    assert warnings == []


def test_jsonl_is_one_record_per_line() -> None:
    results = make_results(AWKWARD_PATHS)
    data, _ = render(results, "jsonl")
    lines = data.decode("utf-8").splitlines()
    assert len(lines) == len(results)
    assert [json.loads(line) for line in lines] == [expected_record(r) for r in results]


def test_json_paths_give_back_the_original_bytes() -> None:
    data, _ = render(make_results([os.fsdecode(b"/p/caf\xe9.jpg")]), "json")
    assert os.fsencode(json.loads(data)[0]["path"]) == b"/p/caf\xe9.jpg"


def test_json_scores_are_rounded_to_four_decimals() -> None:
    data, _ = render([Result(1, 0.123456789, "/a.jpg", 1, 1, None)], "json")
    assert json.loads(data)[0]["score"] == 0.1235


def test_query_key_only_when_asked() -> None:
    results = make_results(["/a.jpg"], query="a red circle") + make_results(["/b.jpg"], query=None)
    without, _ = render(results, "jsonl")
    assert all("query" not in json.loads(line) for line in without.splitlines())
    with_query, _ = render(results, "jsonl", show_query=True)
    assert [json.loads(line)["query"] for line in with_query.splitlines()] == ["a red circle", None]


def test_csv_round_trips_through_csv_reader() -> None:
    results = make_results(AWKWARD_PATHS)
    data, _ = render(results, "csv")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8", errors="surrogateescape"), newline="")))
    assert [row["path"] for row in rows] == AWKWARD_PATHS
    assert [int(row["rank"]) for row in rows] == [r.rank for r in results]
    assert [float(row["score"]) for row in rows] == [round(r.score, 4) for r in results]
    assert rows[0]["width"] == "4032" and rows[1]["width"] == ""
    assert rows[0]["taken_at"] == "2019-07-14T12:30:05"
    assert list(rows[0]) == ["rank", "score", "path", "width", "height", "taken_at", "camera"]


def test_csv_keeps_non_utf8_bytes() -> None:
    data, _ = render(make_results([os.fsdecode(b"/p/caf\xe9.jpg")]), "csv")
    assert b"/p/caf\xe9.jpg" in data


def test_csv_with_queries_has_a_query_column() -> None:
    data, _ = render(make_results(["/a.jpg"], query="dogs, cats"), "csv", show_query=True)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0][-1] == "query"
    assert rows[1][-1] == "dogs, cats"


def test_tsv_is_one_line_per_result_and_unescapes_exactly() -> None:
    results = make_results(AWKWARD_PATHS)
    data, _ = render(results, "tsv")
    lines = data.decode("utf-8", errors="surrogateescape").split("\n")
    assert lines[-1] == ""  # ends with a newline
    header, *rows = lines[:-1]
    assert header.split("\t") == ["rank", "score", "path", "width", "height", "taken_at", "camera"]
    assert len(rows) == len(results)
    fields = [[tsv_unescape(f) for f in row.split("\t")] for row in rows]
    assert all(len(f) == 7 for f in fields)
    assert [f[2] for f in fields] == AWKWARD_PATHS
    assert fields[0][3:] == ["4032", "3024", "2019-07-14T12:30:05", ""]
    assert fields[1][3:] == ["", "", "", ""]


def test_paths_are_byte_exact_lines() -> None:
    paths = ["/photos/plain.jpg", os.fsdecode(b"/p/caf\xe9.jpg"), "/photos/été.jpg"]
    data, warnings = render(make_results(paths), "paths")
    assert data == b"/photos/plain.jpg\n/p/caf\xe9.jpg\n" + "/photos/été.jpg".encode() + b"\n"
    assert data == b"".join(os.fsencode(p) + b"\n" for p in paths)
    assert warnings == []


def test_paths_warn_once_about_newlines() -> None:
    data, warnings = render(make_results(["/a\nb.jpg", "/c.jpg", "/d\ne.jpg"]), "paths")
    assert data == b"/a\nb.jpg\n/c.jpg\n/d\ne.jpg\n"
    assert warnings == [NEWLINE_WARNING]


def test_null_separates_with_nul_bytes_exactly() -> None:
    data, warnings = render(make_results(AWKWARD_PATHS), "null")
    assert data == b"".join(os.fsencode(p) + b"\0" for p in AWKWARD_PATHS)
    assert [os.fsdecode(p) for p in data.split(b"\0")[:-1]] == AWKWARD_PATHS
    assert warnings == []


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("json", b"[]\n"), ("jsonl", b""), ("paths", b""), ("null", b""), ("table", b""),
     ("csv", b"rank,score,path,width,height,taken_at,camera\n"),
     ("tsv", b"rank\tscore\tpath\twidth\theight\ttaken_at\tcamera\n")],
)
def test_empty_results(fmt: str, expected: bytes) -> None:
    assert render([], fmt) == (expected, [])


def test_table_shows_names_scores_sizes_and_dates() -> None:
    results = make_results(["/home/me/Pictures/2019/summer/DSC_0001.JPG", "/home/me/Pictures/IMG_0002.HEIC"])
    data, warnings = render(results, "table", console_width=120)
    text = data.decode("utf-8")
    assert "DSC_0001.JPG" in text and "IMG_0002.HEIC" in text
    assert "0.9000" in text and "0.8877" in text
    assert "4032×3024" in text and "pixels" in text.splitlines()[0]
    assert "2019-07-14 12:30" in text
    assert "\x1b[" not in text  # not a terminal: no escape codes
    assert warnings == []


def test_table_keeps_awkward_names_on_their_row() -> None:
    results = make_results(["/p/two\nlines.jpg", os.fsdecode(b"/p/caf\xe9.jpg"), "/p/[bold]x[/bold].jpg"])
    text = render(results, "table", console_width=200)[0].decode("utf-8")
    assert "two␊lines.jpg" in text
    assert "caf\\xe9.jpg" in text
    assert "[bold]x[/bold].jpg" in text  # shown literally, not taken as markup
    rows = [line for line in text.splitlines() if ".jpg" in line]
    assert len(rows) == 3


def test_table_fits_the_console_width() -> None:
    results = make_results(["/very/long/" + "folder/" * 30 + "picture.jpg"])
    text = render(results, "table", console_width=60)[0].decode("utf-8")
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "picture.jpg" in text.replace("\n", "").replace(" ", "")


def test_table_groups_results_by_query() -> None:
    results = make_results(["/a/red.jpg"], query="a red circle") + make_results(["/a/blue.jpg"], query="blue sky")
    text = render(results, "table", show_query=True)[0].decode("utf-8")
    assert text.index("a red circle") < text.index("red.jpg") < text.index("blue sky") < text.index("blue.jpg")


def test_a_terminal_gets_a_table_and_a_pipe_gets_paths_by_default() -> None:
    assert choose_format(None, null=False, stdout_is_tty=True) == "table"
    assert choose_format(None, null=False, stdout_is_tty=False) == "paths"


def test_a_format_asked_for_is_used_on_a_terminal_or_a_pipe() -> None:
    assert choose_format("json", null=False, stdout_is_tty=True) == "json"
    assert choose_format("table", null=False, stdout_is_tty=False) == "table"


def test_null_separated_output_wins_over_any_format() -> None:
    assert choose_format("json", null=True, stdout_is_tty=True) == "null"
    assert choose_format(None, null=True, stdout_is_tty=False) == "null"


def test_the_output_formats_are_the_documented_eight() -> None:
    assert {f.value for f in OutputFormat} == {"table", "json", "jsonl", "csv", "tsv", "paths", "null", "html"}


def test_every_format_is_one_writer_in_the_registry_html_included() -> None:
    from clipsearch.errors import UsageError
    from clipsearch.output.formats import WRITERS

    assert set(WRITERS) == set(OutputFormat)
    results = make_results(["/photos/a.jpg", "/photos/b <i>.jpg"], query="a cat")
    asked: list[str] = []

    def thumbnail(path: str) -> bytes:
        asked.append(path)
        return b"\xff\xd8jpeg"

    page, warnings = render(results, "html", thumbnail=thumbnail, title="a cat")
    text = page.decode()
    assert warnings == [] and text.startswith("<!doctype html>") and "<title>a cat</title>" in text
    assert asked == ["/photos/a.jpg", "/photos/b <i>.jpg"] and "b &lt;i&gt;.jpg" in text
    assert text.count("data:image/jpeg;base64,") == 2
    with pytest.raises(UsageError, match="-f html is for `query` and `similar`"):
        render(results, "html")  # nothing to take thumbnails from: not search results


def test_unknown_format_is_a_usage_error() -> None:
    result = run_cli("query", "a cat", "-f", "xml")
    assert result.exit_code == 2
    assert result.stderr.startswith("clipsearch: error: ") and "xml" in result.stderr
    assert len(result.stderr.splitlines()) == 1


LIBRARY = [
    "/home/me/Pictures/Family/2023/Summer holidays in Brittany/DSC_0128.JPG",
    "/home/me/Pictures/Family/2023/Summer holidays in Brittany/Day 3 - beach/IMG_20230614_182205.jpg",
    "/mnt/nas/photos/archive/scans/1987/album-04/page-12.png",
    "/home/me/Downloads/inspiration.webp",
]


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_table_fits_its_terminal_and_never_cuts_a_file_name(width: int) -> None:
    results = make_results(LIBRARY)
    text = render(results, "table", console_width=width, cwd="/home/me/Pictures", home="/home/me")[0].decode()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    rows = lines[2:]
    assert len(rows) == len(LIBRARY)  # one line per result: nothing wraps
    for row, path in zip(rows, LIBRARY):
        assert os.path.basename(path) in row
    assert rows[0].split()[2].startswith("Family/2023/")  # relative to the current folder
    assert "~/Downloads/inspiration.webp" in rows[3]  # under home: shown with ~
    header = lines[0].split()
    assert header[:3] == ["#", "score", "path"] and "size" not in header
    assert ("pixels" in header) == (width >= 70)  # the compact layout below 70 columns drops it
    assert "taken" in header


def test_columns_empty_for_every_result_are_left_out() -> None:
    results = [Result(1, 0.5, "/p/a.jpg", None, None, None), Result(2, 0.4, "/p/b.jpg", None, None, None)]
    header = render(results, "table", console_width=120)[0].decode().splitlines()[0].split()
    assert header == ["#", "score", "path"]
