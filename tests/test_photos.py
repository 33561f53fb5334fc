"""The photo fixtures show what they claim to show, in the formats they claim to be."""

from __future__ import annotations

import collections
import dataclasses
import random
from datetime import datetime
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from photos import CAMERA_SIZE, FORMATS, Photo, write_photo, write_photo_library
from PIL import Image, ImageOps
from scenes import COLOURS, DIRECTIONS, SHAPES, Scene, random_scene, render

PIL_FORMATS = {"jpeg": "JPEG", "jpeg-rotated": "JPEG", "png": "PNG", "png-alpha": "PNG", "webp": "WEBP", "heic": "HEIF"}
ORIENTATION = 0x0112

pillow_heif.register_heif_opener()


def small(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float32)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def pointing(scene: Scene, direction: str) -> Scene:
    return dataclasses.replace(scene, objects=(dataclasses.replace(scene.main, direction=direction),))


def rotated_arrows(photos: list[Photo]) -> list[Photo]:
    return [p for p in photos if p.format == "jpeg-rotated" and p.scene.main.kind == "arrow"]


def test_library_covers_every_colour_shape_pair_once(photo_library: tuple[Path, list[Photo]]) -> None:
    root, photos = photo_library
    assert 60 <= len(photos) <= 80
    assert all(p.path.is_absolute() and p.path.is_relative_to(root) for p in photos)
    singles = collections.Counter((p.scene.main.colour, p.scene.main.kind) for p in photos if len(p.scene.objects) == 1)
    for colour in COLOURS:
        for shape in SHAPES:
            assert singles[(colour, shape)] == 1, (colour, shape)
    arrows = [p for p in photos if p.scene.main.kind == "arrow"]
    assert {p.scene.main.direction for p in arrows} == set(DIRECTIONS)
    assert sum(len(p.scene.objects) == 2 for p in photos) >= 2
    assert {p.format for p in photos} == set(FORMATS)
    assert sum(p.size == CAMERA_SIZE and p.format == "jpeg" for p in photos) >= 2
    folders = {p.path.parent.relative_to(root).as_posix() for p in photos}
    assert {"2019/summer", "phone/DCIM/100APPLE", "screenshots"} <= folders
    assert len({p.path for p in photos}) == len(photos)


def test_every_file_opens_as_its_format_and_size(photo_library: tuple[Path, list[Photo]]) -> None:
    _, photos = photo_library
    for photo in photos:
        with Image.open(photo.path) as image:
            assert image.format == PIL_FORMATS[photo.format], photo.path
            upright = ImageOps.exif_transpose(image)
            assert upright.size == photo.size, photo.path
            upright.load()


def test_lossless_files_hold_exactly_the_scene(photo_library: tuple[Path, list[Photo]]) -> None:
    _, photos = photo_library
    pngs = [p for p in photos if p.format == "png"]
    assert pngs
    for photo in pngs:
        with Image.open(photo.path) as image:
            assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(render(photo.scene, *photo.size)))


def test_rotated_arrows_point_their_way_once_oriented(photo_library: tuple[Path, list[Photo]]) -> None:
    _, photos = photo_library
    arrows = rotated_arrows(photos)
    assert len(arrows) >= 4
    assert {p.scene.main.direction for p in arrows} == set(DIRECTIONS)
    for photo in arrows:
        with Image.open(photo.path) as image:
            upright = small(ImageOps.exif_transpose(image))
        distances = {d: mad(upright, small(render(pointing(photo.scene, d), *photo.size))) for d in DIRECTIONS}
        assert min(distances, key=distances.__getitem__) == photo.scene.main.direction, (photo.path, distances)
        assert distances[photo.scene.main.direction] < 1.0, (photo.path, distances)


def test_rotated_files_store_turned_pixels(photo_library: tuple[Path, list[Photo]]) -> None:
    _, photos = photo_library
    rotated = [p for p in photos if p.format == "jpeg-rotated"]
    orientations = set()
    for photo in rotated:
        expected = small(render(photo.scene, *photo.size))
        with Image.open(photo.path) as image:
            orientations.add(image.getexif()[ORIENTATION])
            if image.getexif()[ORIENTATION] in (6, 8):
                assert image.size == photo.size[::-1], photo.path
            assert mad(small(ImageOps.exif_transpose(image)), expected) < 1.0, photo.path
            # A viewer that ignores the tag shows something else: the pixels themselves are turned.
            assert mad(small(image), expected) > 4.0, photo.path
    assert {3, 6, 8} <= orientations


def test_exif_dates_and_cameras_read_back(photo_library: tuple[Path, list[Photo]]) -> None:
    _, photos = photo_library
    assert sum(p.taken_at is not None for p in photos) >= 40
    assert any(p.taken_at is None for p in photos)
    for photo in photos:
        with Image.open(photo.path) as image:
            exif = image.getexif()
            written = exif.get_ifd(0x8769).get(0x9003)
        if photo.taken_at is None:
            assert written is None, photo.path
        else:
            assert written == datetime.fromisoformat(photo.taken_at).strftime("%Y:%m:%d %H:%M:%S"), photo.path
            assert exif.get(0x010F), photo.path  # Make


def test_stickers_have_transparent_margins(photo_library: tuple[Path, list[Photo]]) -> None:
    _, photos = photo_library
    stickers = [p for p in photos if p.format == "png-alpha"]
    assert stickers
    for photo in stickers:
        with Image.open(photo.path) as image:
            assert image.mode == "RGBA"
            alpha = np.asarray(image.getchannel("A"))
        height, width = alpha.shape
        assert alpha[0, 0] == alpha[-1, -1] == alpha[0, -1] == alpha[-1, 0] == 0
        assert alpha[height // 2, width // 2] == 255
        assert (alpha == 255).mean() > 0.5


def test_library_is_deterministic(photo_library: tuple[Path, list[Photo]], tmp_path: Path) -> None:
    root, photos = photo_library
    again = write_photo_library(tmp_path)
    assert [p.path.relative_to(root) for p in photos] == [p.path.relative_to(tmp_path) for p in again]
    assert [p.scene for p in photos] == [p.scene for p in again]
    assert [p.taken_at for p in photos] == [p.taken_at for p in again]
    jpegs = [(a, b) for a, b in zip(photos, again) if a.format.startswith("jpeg")]
    assert jpegs
    for first, second in jpegs:
        assert first.path.read_bytes() == second.path.read_bytes(), first.path


def test_write_photo_reports_what_it_wrote(tmp_path: Path) -> None:
    scene = random_scene(random.Random(1), kind="circle", colour="red")
    photo = write_photo(tmp_path / "deep" / "a.jpg", scene, "jpeg", (320, 240), datetime(2021, 5, 6, 7, 8, 9, 500))
    assert photo == Photo(tmp_path / "deep" / "a.jpg", scene, "jpeg", "2021-05-06T07:08:09", (320, 240))
    with Image.open(photo.path) as image:
        assert image.size == (320, 240)


@pytest.mark.parametrize(("fmt", "orientation"), [("jpeg", 6), ("jpeg-rotated", 1), ("png", 3), ("gif", 1)])
def test_write_photo_rejects_contradictions(tmp_path: Path, fmt: str, orientation: int) -> None:
    scene = random_scene(random.Random(1), kind="circle", colour="red")
    with pytest.raises(ValueError):
        write_photo(tmp_path / "x", scene, fmt, (64, 64), orientation=orientation)
