"""Understanding the library: zero-shot labels, tags, duplicates, filters and combined queries, measured on the
trained test model and the photo fixture (the figures are printed with -s, and asserted with a margin)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from itertools import combinations
from pathlib import Path

import pytest
from duplicate_set import write_duplicate_set
from helpers import IndexedLibrary, TinyModel, model_args, one_error_line, run_cli
from scenes import COLOURS, SHAPES

VOCABULARY = """\
[colour]
templates = a photo of a {} shape. | a {} object. | something {}.
red
green
blue
yellow
purple
orange
white
black
[shape]
templates = a photo of a {}. | a {}. | a {} shape.
circle
square
triangle
star
hexagon
cross
arrow
"""


def results(*args: object) -> list[dict]:
    result = run_cli(*args, "-f", "json")
    assert result.exit_code in (0, 1), result.stderr
    return json.loads(result.stdout or "[]")


def singles(library: IndexedLibrary) -> dict[str, tuple[str, str]]:
    """path -> (colour, shape) of the photos that show one coloured shape."""
    return {str(p.path): (p.scene.objects[0].colour, p.scene.objects[0].kind) for p in library.photos
            if len(p.scene.objects) == 1 and p.scene.objects[0].kind != "arrow"}


@pytest.fixture()
def db(indexed_library: IndexedLibrary, tmp_path: Path) -> Path:
    copy = tmp_path / "db"
    shutil.copytree(indexed_library.db, copy)
    return copy


def test_classify_finds_colour_and_shape_with_the_prompt_ensemble(indexed_library: IndexedLibrary) -> None:
    truth = singles(indexed_library)
    labels = ",".join(f"{c} {s}" for c in COLOURS for s in SHAPES)
    accuracy = {}
    for name, extra in (("ensemble", []), ("single template", ["--template", "a photo of a {}."])):
        found = results("classify", *truth, "--labels", labels, "--top", "1", "--db", indexed_library.db, *extra)
        accuracy[name] = sum(r["label"] == " ".join(truth[r["path"]]) for r in found) / len(truth)
        assert {r["rank"] for r in found} == {1} and all(0 < r["probability"] <= 1 for r in found)
    print(f"classify top-1 on {len(truth)} photos: {accuracy}")
    assert accuracy["ensemble"] >= 0.85 and accuracy["ensemble"] >= accuracy["single template"] - 0.03


def test_classify_a_folder_uses_the_stored_vectors_and_warns_about_one_label(indexed_library: IndexedLibrary) -> None:
    folder = indexed_library.root / "2019"
    found = results("classify", folder, "--labels", "red,blue,green", "--top", "2", "--db", indexed_library.db)
    assert len({r["path"] for r in found}) == len([p for p in indexed_library.photos if "/2019/" in str(p.path)])
    one = run_cli("classify", folder, "--labels", "red", "--db", indexed_library.db, "-f", "json")
    assert one.exit_code == 0 and "probability is always 1" in one.stderr
    one_error_line(run_cli("classify", folder, "--labels", " , ", "--db", indexed_library.db), "no labels")


def test_tags_label_the_colours_and_filter_searches(db: Path, indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    vocabulary = tmp_path / "words.txt"
    vocabulary.write_text(VOCABULARY)
    done = run_cli("tag", "--vocabulary", vocabulary, "--db", db)
    assert done.exit_code == 0 and "tagged" in done.stderr, done.stderr
    with sqlite3.connect(db / "catalog.db") as connection:
        rows = connection.execute("SELECT files.path, tags.label FROM tags JOIN files ON files.id = tags.file_id")
        tags: dict[str, set[str]] = {}
        for path, label in rows:
            tags.setdefault(os.fsdecode(path), set()).add(label)
    right = wrong = missed = 0
    for photo in indexed_library.photos:
        wanted = {o.colour for o in photo.scene.objects if o.colour}
        got = tags.get(str(photo.path), set()) & set(COLOURS)
        right, wrong, missed = right + len(wanted & got), wrong + len(got - wanted), missed + len(wanted - got)
    precision, recall = right / (right + wrong), right / (right + missed)
    print(f"colour tags: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.9 and recall >= 0.85
    counts = results("tags", "--db", db)
    assert {"tag", "count"} == set(counts[0]) and sum(c["count"] for c in counts) == sum(map(len, tags.values()))
    red = [r["path"] for r in results("tags", "red", "--db", db)]
    assert red and all("red" in tags[path] for path in red)
    with_tag = results("query", "a shape", "--tag", "red", "-n", "60", "--db", db)
    assert {r["path"] for r in with_tag} == set(red)
    without = results("query", "a shape", "--no-tag", "red", "-n", "60", "--db", db)
    assert not {r["path"] for r in without} & set(red)
    one_error_line(run_cli("query", "x", "--tag", "no-such-tag", "--db", db), "no-such-tag")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    one_error_line(run_cli("tag", "--vocabulary", empty, "--db", db), "no labels")


def test_index_tags_new_photos_as_it_goes(db: Path, indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    vocabulary = tmp_path / "words.txt"
    vocabulary.write_text(VOCABULARY)
    assert run_cli("tag", "--vocabulary", vocabulary, "--db", db).exit_code == 0
    extra = tmp_path / "extra"
    extra.mkdir()
    source = next(p for p in indexed_library.photos if str(p.path) in singles(indexed_library))
    shutil.copy2(source.path, extra / "copy.jpg")
    assert run_cli("index", extra, "--db", db).exit_code == 0
    tagged = [r["path"] for r in results("tags", source.scene.objects[0].colour, "--db", db, "-n", "100")]
    assert str(extra / "copy.jpg") in tagged


def test_duplicates_tell_copies_versions_and_bursts_apart(tmp_path: Path, test_model: TinyModel) -> None:
    labelled = write_duplicate_set(tmp_path / "photos")
    db = tmp_path / "db"
    assert run_cli("index", tmp_path / "photos", "--db", db, *model_args(test_model)).exit_code == 0
    shutil.copy2(labelled.paths[0], tmp_path / "photos" / "exact-copy.jpg")
    assert run_cli("index", tmp_path / "photos", "--db", db).exit_code == 0
    groups = results("duplicates", "--similar", "--db", db)
    found = {kind: set() for kind in ("exact", "near", "similar")}
    for group in groups:
        found[group["kind"]] |= {frozenset(p) for p in combinations(group["paths"], 2)}
        assert group["scores"][0] == pytest.approx(1.0) and len(group["paths"]) == len(group["scores"])
    assert frozenset((str(labelled.paths[0]), str(tmp_path / "photos" / "exact-copy.jpg"))) in found["near"]
    near = found["near"] | found["exact"]
    want_near = labelled.near | {frozenset((str(tmp_path / "photos" / "exact-copy.jpg"), p)) for pair in labelled.near
                                 for p in pair if str(labelled.paths[0]) in pair and p != str(labelled.paths[0])}
    near_precision = len(near & want_near) / len(near)
    near_recall = len(near & labelled.near) / len(labelled.near)
    similar = found["similar"] - near
    similar_precision = len(similar & labelled.similar) / len(similar) if similar else 1.0
    similar_recall = len(similar & labelled.similar) / len(labelled.similar)
    print(f"duplicates: near P {near_precision:.3f} R {near_recall:.3f}; similar P {similar_precision:.3f} "
          f"R {similar_recall:.3f}")
    assert near_precision >= 0.9 and near_recall >= 0.9 and similar_precision >= 0.8 and similar_recall >= 0.8
    plain = results("duplicates", "--db", db)
    assert {g["kind"] for g in plain} <= {"exact", "near"}  # bursts only with --similar
    biggest = plain[0]
    assert len(biggest["paths"]) >= len(plain[-1]["paths"])  # largest groups first
    keep = Path(biggest["paths"][0])
    assert keep.name.startswith(("base", "exact", "turned"))  # most pixels first: not the half-size version
    blocks = run_cli("duplicates", "--db", db, "-f", "paths").stdout.split("\n\n")
    assert len(blocks) == len(plain)
    null = run_cli("duplicates", "--db", db, "-0").stdout_bytes
    assert null.count(b"\0\0") == len(plain) - 1


def test_after_and_before_keep_the_photos_taken_between(indexed_library: IndexedLibrary) -> None:
    db = indexed_library.db
    in_2020 = results("query", "a shape", "--after", "2020", "--before", "2021", "-n", "60", "--db", db)
    assert in_2020 and all(r["taken_at"].startswith("2020") for r in in_2020)
    everything = results("query", "a shape", "-n", "60", "--db", db)
    assert [r["path"] for r in in_2020] == [r["path"] for r in everything if (r["taken_at"] or "").startswith("2020")]


def test_undated_adds_the_photos_without_a_date_to_a_date_range(indexed_library: IndexedLibrary) -> None:
    june = results("query", "a shape", "--after", "2019-07", "--before", "2019-08", "--undated", "-n", "60", "--db",
                   indexed_library.db)
    assert any(r["taken_at"] is None for r in june) and any(r["taken_at"] for r in june)


def test_camera_keeps_the_photos_of_that_camera(indexed_library: IndexedLibrary) -> None:
    nikon = results("query", "a shape", "--camera", "nikon", "-n", "60", "--db", indexed_library.db)
    assert nikon and all("/2019/summer/" in r["path"] for r in nikon) and "NIKON" in nikon[0]["camera"]


def test_sort_date_orders_results_by_date_and_ranks_them_in_that_order(indexed_library: IndexedLibrary) -> None:
    by_date = results("query", "a shape", "--after", "2019", "--sort", "date", "-n", "10", "--db", indexed_library.db)
    assert [r["taken_at"] for r in by_date] == sorted(r["taken_at"] for r in by_date)
    assert [r["rank"] for r in by_date] == list(range(1, len(by_date) + 1))


def test_sort_path_orders_results_by_path(indexed_library: IndexedLibrary) -> None:
    by_path = results("query", "a shape", "--sort", "path", "-n", "10", "--db", indexed_library.db)
    assert [r["path"] for r in by_path] == sorted(r["path"] for r in by_path)


def test_a_bad_date_or_an_empty_date_range_is_one_error_line(indexed_library: IndexedLibrary) -> None:
    db = indexed_library.db
    one_error_line(run_cli("query", "x", "--after", "2019-13", "--db", db), "not a date")
    one_error_line(run_cli("query", "x", "--after", "2021", "--before", "2020", "--db", db), "--after")


def test_combined_queries_move_results_the_way_asked(indexed_library: IndexedLibrary) -> None:
    db, photos = indexed_library.db, {str(p.path): p for p in indexed_library.photos}

    def ranks(*args: object, wanted) -> list[int]:
        return [r["rank"] for r in results(*args, "-n", "60", "--db", db) if wanted(photos[r["path"]].scene.objects)]

    def red_circle(objects) -> bool:
        return any(o.kind == "circle" and o.colour == "red" for o in objects)

    def circle(objects) -> bool:
        return any(o.kind == "circle" for o in objects)

    plain, without_red = ranks("query", "a circle", wanted=red_circle), ranks("query", "a circle", "--not", "red",
                                                                              wanted=red_circle)
    others = ranks("query", "a circle", "--not", "red", wanted=lambda o: circle(o) and not red_circle(o))
    print(f"red circle at {plain} for 'a circle', at {without_red} with --not red; other circles at {others}")
    assert without_red[0] > plain[0] and max(others[:len(COLOURS) - 1]) < without_red[0]
    red_square = next(path for path, p in photos.items() if len(p.scene.objects) == 1
                      and (p.scene.objects[0].colour, p.scene.objects[0].kind) == ("red", "square"))

    def blue(objects) -> bool:
        return any(o.colour == "blue" for o in objects)

    before = ranks("similar", red_square, wanted=blue)
    after = ranks("similar", red_square, "--and", "blue", wanted=blue)
    print(f"blue photos at {before} for a red square, at {after} with --and blue")
    assert sum(after) / len(after) < sum(before) / len(before)
    weighted = ranks("query", "a circle", "--not", "red:1.5", wanted=red_circle)
    assert weighted[0] > without_red[0]  # a larger weight pushes it further
    one_error_line(run_cli("query", "a circle", "--not", "a circle:1", "--and", "a circle:0.001", "--db", db,
                           "--not", "a circle:0.001"), "cancel")
