"""`clipsearch locate`, `query --where` and the detector backend: boxes where the text is, on pictures that know."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
from helpers import IndexedLibrary, run_cli
from PIL import Image
from small_objects import SmallObjectPhoto, iou, write_small_objects
from web_server import running_web

SMALL_OBJECTS = 30


@pytest.fixture(scope="module")
def small_objects(tmp_path_factory: pytest.TempPathFactory) -> list[SmallObjectPhoto]:
    return write_small_objects(tmp_path_factory.mktemp("small-objects"), SMALL_OBJECTS)


def located(db: Path, *args: object) -> list[dict]:
    result = run_cli("locate", *args, "--db", db, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_locate_finds_small_objects_among_distractors(indexed_library: IndexedLibrary,
                                                      small_objects: list[SmallObjectPhoto]) -> None:
    overlaps = []
    for photo in small_objects:
        records = located(indexed_library.db, photo.text, photo.path, "--top", "1")
        assert len(records) == 1 and records[0]["label"] == photo.text
        overlaps.append(iou(records[0]["box"], photo.box))
    share = float(np.mean([value >= 0.5 for value in overlaps]))
    print(f"locate on {len(overlaps)} small objects: mean IoU {np.mean(overlaps):.3f}, IoU >= 0.5 in {share:.0%}")
    assert share >= 0.6  # measured 0.725 on 40 pictures of this seed (README, "Where in a photo")


def test_records_and_boxes_are_in_the_upright_pictures_pixels(indexed_library: IndexedLibrary) -> None:
    rotated = next(p for p in indexed_library.photos if p.format == "jpeg-rotated")
    records = located(indexed_library.db, "an arrow", rotated.path, "--top", "3")
    assert 1 <= len(records) <= 3 and [set(r) for r in records] == [{"path", "label", "score", "box"}] * len(records)
    width, height = rotated.size  # as displayed: EXIF orientation applied
    for record in records:
        x, y, w, h = record["box"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= width and y + h <= height
    assert records == sorted(records, key=lambda r: -r["score"])[:1] + records[1:]  # the refined box first


def test_locate_chains_after_a_query_and_draws_its_boxes(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    paths = run_cli("query", "a red circle", "--db", indexed_library.db, "-n", "3").stdout
    sheet = tmp_path / "boxes.png"
    result = run_cli("locate", "a red circle", "-", "--db", indexed_library.db, "--top", "1", "--contact-sheet",
                     sheet, "--columns", "3", "--cell-size", "200", input=paths)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == paths  # in a pipe: the paths that have a box
    picture = np.asarray(Image.open(sheet).convert("RGB")).astype(int)
    box_colour = np.all(np.abs(picture - np.array([255, 214, 0])) < 30, axis=2)
    assert box_colour.sum() > 3 * 4 * 40  # three boxes of yellow lines are drawn


def test_query_where_adds_the_best_box_to_each_result(indexed_library: IndexedLibrary) -> None:
    result = run_cli("query", "a red circle", "--db", indexed_library.db, "-n", "3", "-f", "csv", "--where")
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.endswith(",box") and len(rows) == 3
    assert all(len(row.rsplit(",", 1)[1].split()) == 4 for row in rows)
    plain = run_cli("query", "a red circle", "--db", indexed_library.db, "-n", "3", "-f", "json")
    assert "box" not in plain.stdout  # only when asked


def test_bad_input_is_one_line_each(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    photo = indexed_library.photos[0].path
    empty = run_cli("locate", "  ", photo, "--db", indexed_library.db)
    assert empty.exit_code == 2 and empty.stderr.startswith("clipsearch: error: the text is empty")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (20, 12), "red").save(tiny)
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    result = run_cli("locate", "a red circle", tiny, notes, photo, "--db", indexed_library.db, "-f", "jsonl")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [f"skipped {tiny}: 20x12 is too small to look inside",
                                          f"skipped {notes}: not an image (unrecognised content)"]
    assert {json.loads(line)["path"] for line in result.stdout.splitlines()} == {str(photo)}
    nothing = run_cli("locate", "a red circle", notes, "--db", indexed_library.db)
    assert nothing.exit_code == 1
    missing = run_cli("locate", "a cat", photo, "--detector", f"hf:{tmp_path / 'no-such-detector'}")
    assert missing.exit_code == 2 and len(missing.stderr.splitlines()) == 1
    assert missing.stderr.startswith("clipsearch: error: --detector hf:")


def _tiny_owlv2(folder: Path) -> Path:
    """A random OWLv2 of the smallest shape, saved with its processor: a local detector, for the mechanics."""
    import torch
    from hf_tiny import tiny_clip
    from transformers import (
        CLIPTokenizerFast,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    tokenizer_source = tiny_clip(folder / "tokenizer-source")
    torch.manual_seed(0)
    config = Owlv2Config(text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                      "num_attention_heads": 2, "vocab_size": 300, "max_position_embeddings": 16,
                                      "bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0},
                         vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                        "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
                         projection_dim=32)
    Owlv2ForObjectDetection(config).save_pretrained(folder)
    processor = Owlv2Processor(Owlv2ImageProcessor(size={"height": 64, "width": 64}),
                               CLIPTokenizerFast.from_pretrained(tokenizer_source, model_max_length=16))
    processor.save_pretrained(folder)
    shutil.rmtree(tokenizer_source)
    return folder


@pytest.mark.slow
def test_an_owlv2_detector_from_a_local_folder_gives_valid_boxes(indexed_library: IndexedLibrary,
                                                               tmp_path: Path) -> None:
    detector = _tiny_owlv2(tmp_path / "owlv2")
    photos = [p for p in indexed_library.photos if p.format in ("jpeg", "jpeg-rotated")][:3]
    result = run_cli("locate", "a red circle", *[p.path for p in photos], "--detector", f"hf:{detector}",
                     "--top", "2", "-f", "json")
    assert result.exit_code == 0, result.stderr
    records = json.loads(result.stdout)
    # Random weights predict boxes anywhere, some empty (those are dropped): whatever comes must be a real box.
    assert 1 <= len(records) <= 2 * len(photos)
    for record in records:
        width, height = next(p for p in photos if str(p.path) == record["path"]).size
        x, y, w, h = record["box"]
        assert 0 <= x < width and 0 <= y < height and 0 < w <= width - x and 0 < h <= height - y
        assert 0.0 <= record["score"] <= 1.0


def _recall_at_10(db: Path, photos: list[SmallObjectPhoto]) -> float:
    found = 0
    for photo in photos:
        result = run_cli("query", photo.text, "--db", db, "-n", "10", "-f", "json")
        found += str(photo.path) in [record["path"] for record in json.loads(result.stdout)]
    return found / len(photos)


@pytest.mark.slow
def test_region_vectors_find_small_objects(indexed_library: IndexedLibrary, small_objects: list[SmallObjectPhoto],
                                           tmp_path: Path) -> None:
    root = tmp_path / "photos"
    shutil.copytree(small_objects[0].path.parent, root / "small")
    shutil.copytree(indexed_library.root, root / "library")  # the fixture's other photos are the haystack
    moved = [SmallObjectPhoto(root / "small" / p.path.name, p.text, p.box) for p in small_objects]
    plain, regions = tmp_path / "plain", tmp_path / "regions"
    model = json.loads(run_cli("status", "--json", "--db", indexed_library.db).stdout)["model_identity"]
    flags = ["--model", model["config_path"], "--pretrained", model["checkpoint_path"]]
    assert run_cli("index", root, "--db", plain, *flags).exit_code == 0
    assert run_cli("index", root, "--db", regions, *flags, "--regions").exit_code == 0
    without, with_regions = _recall_at_10(plain, moved), _recall_at_10(regions, moved)
    print(f"small-object recall@10: {without:.3f} without regions, {with_regions:.3f} with")
    assert with_regions >= max(2 * without, 0.6)  # measured 0.133 and 0.900 on 30 pictures of this seed
    status = json.loads(run_cli("status", "--json", "--db", regions).stdout)
    assert status["regions"] == 9 * status["images"]
    # A region names where it matched, as --where would.
    records = json.loads(run_cli("query", moved[0].text, "--db", regions, "-n", "10", "-f", "json").stdout)
    assert all(len(r["box"]) == 4 for r in records if r["path"] == str(moved[0].path))
    # The web page draws the region on the result's thumbnail, in the photo's own coordinates.
    with running_web(regions) as web:
        _, _, page = web.get("/?" + urlencode({"q": moved[0].text, "limit": 10}))
    drawn = re.findall(r'<rect class="box" x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"/>', page.decode())
    assert drawn and [[int(v) for v in rect] for rect in drawn] == [r["box"] for r in records if r.get("box")]
    # --no-regions drops them; the files' own index answers as before.
    assert run_cli("index", "--db", regions, "--no-regions").exit_code == 0
    assert json.loads(run_cli("status", "--json", "--db", regions).stdout)["regions"] == 0
    assert _recall_at_10(regions, moved) == without
