from __future__ import annotations

import io
import os
import resource
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsearch.errors import (
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TruncatedImageError,
    UnreadableFileError,
)
from clipsearch.imaging.decode import decode_image, read_file
from clipsearch.imaging.pixels import prepare_pixels, to_rgb

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def quadrants(width: int, height: int, tl: tuple, tr: tuple, bl: tuple, br: tuple) -> Image.Image:
    image = Image.new("RGB", (width, height))
    half_w, half_h = width // 2, height // 2
    image.paste(tl, (0, 0, half_w, half_h))
    image.paste(tr, (half_w, 0, width, half_h))
    image.paste(bl, (0, half_h, half_w, height))
    image.paste(br, (half_w, half_h, width, height))
    return image


def corners(image: Image.Image) -> tuple[tuple, tuple, tuple, tuple]:
    w, h = image.size
    return tuple(image.getpixel(xy) for xy in [(4, 4), (w - 5, 4), (4, h - 5), (w - 5, h - 5)])  # type: ignore[return-value]


def close(a: tuple, b: tuple, tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


# Stored pixels for an upright portrait (red, green / blue, yellow) as the EXIF spec describes each orientation:
# 6 = "row 0 is the visual right side" (turn 90° clockwise to view), 8 = "row 0 is the visual left side",
# 3 = upside down.
@pytest.mark.parametrize(
    ("orientation", "stored"),
    [
        (6, quadrants(64, 32, GREEN, YELLOW, RED, BLUE)),
        (8, quadrants(64, 32, BLUE, RED, YELLOW, GREEN)),
        (3, quadrants(32, 64, YELLOW, BLUE, GREEN, RED)),
        (1, quadrants(32, 64, RED, GREEN, BLUE, YELLOW)),
    ],
)
def test_exif_orientation_turns_the_photo_upright(orientation: int, stored: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (32, 64)
    assert (decoded.info.width, decoded.info.height) == (32, 64)
    got = corners(decoded.image)
    for actual, wanted in zip(got, (RED, GREEN, BLUE, YELLOW), strict=True):
        assert close(actual, wanted), got


def exif_bytes(original: str | None = None, plain: str | None = None) -> bytes:
    exif = Image.Exif()
    if plain is not None:
        exif[0x0132] = plain
    if original is not None:
        exif.get_ifd(0x8769)[0x9003] = original
    return exif.tobytes()


@pytest.mark.parametrize(
    ("original", "plain", "expected"),
    [
        ("2019:07:14 18:03:22", "2020:01:01 00:00:00", "2019-07-14T18:03:22"),
        (None, "2020:01:02 03:04:05", "2020-01-02T03:04:05"),
        ("0000:00:00 00:00:00", None, None),
        ("garbage", None, None),
        (None, None, None),
    ],
)
def test_capture_time_comes_from_exif(original: str | None, plain: str | None, expected: str | None) -> None:
    data = encode(noise(16, 16), "JPEG", exif=exif_bytes(original, plain))
    assert decode_image(data).info.taken_at == expected


def test_large_jpeg_is_decoded_in_draft_mode_but_reports_full_size() -> None:
    data = encode(quadrants(4000, 3000, RED, GREEN, BLUE, YELLOW), "JPEG", quality=80)
    decoded = decode_image(data, target_size=224)
    assert (decoded.info.width, decoded.info.height) == (4000, 3000)
    assert 224 <= min(decoded.image.size) < 3000
    assert decoded.image.size[0] > decoded.image.size[1]
    assert close(corners(decoded.image)[3], YELLOW)


def test_draft_mode_with_orientation_reports_upright_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (2400, 1600), RED), "JPEG", exif=exif.tobytes())
    decoded = decode_image(data, target_size=200)
    assert (decoded.info.width, decoded.info.height) == (1600, 2400)
    width, height = decoded.image.size
    assert 200 <= width < 1600 and height > width


def gradient(mode: str, low: float, high: float, dtype: str) -> Image.Image:
    values = np.linspace(low, high, 64 * 16).reshape(16, 64).astype(dtype)
    if mode in ("I;16", "I;16B"):
        return Image.frombytes(mode, (64, 16), values.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    return Image.fromarray(values, mode=mode)


@pytest.mark.parametrize(
    ("mode", "fmt", "low", "high", "dtype"),
    [
        ("I;16", "PNG", 100, 1100, "uint16"),  # a dark 16-bit scan: must not come out black or white
        ("I;16B", "TIFF", 30000, 65535, "uint16"),
        ("I", "TIFF", -5000, 200000, "int32"),
        ("F", "TIFF", 0.0, 1.0, "float32"),
    ],
)
def test_high_bit_depth_is_stretched_over_its_range(mode: str, fmt: str, low: float, high: float, dtype: str) -> None:
    source = gradient(mode, low, high, dtype)
    data = encode(source, fmt)
    assert Image.open(io.BytesIO(data)).mode == mode
    pixels = np.asarray(decode_image(data).image)
    assert pixels.min() == 0 and pixels.max() == 255
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[-1, -1].tolist() == [255, 255, 255]
    middle = pixels[8, 32, 0]
    assert 100 < middle < 155


def test_transparent_pixels_become_white() -> None:
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    decoded = decode_image(encode(rgba, "PNG")).image
    assert decoded.getpixel((0, 0)) == (255, 255, 255)
    assert decoded.getpixel((5, 5)) == RED

    la = Image.new("LA", (16, 16), (0, 255))
    la.putpixel((0, 0), (0, 0))
    decoded = decode_image(encode(la, "PNG")).image
    assert decoded.getpixel((0, 0)) == (255, 255, 255) and decoded.getpixel((5, 5)) == (0, 0, 0)


def test_palette_with_transparency_composites_over_white() -> None:
    palette_image = Image.new("P", (16, 16), 1)
    palette_image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.putpixel((0, 0), 0)
    decoded = decode_image(encode(palette_image, "PNG", transparency=0)).image
    assert decoded.getpixel((0, 0)) == (255, 255, 255)
    assert decoded.getpixel((5, 5)) == BLUE

    pa = Image.new("PA", (16, 16))
    pa.putpalette([0, 0, 255] * 256)
    assert to_rgb(pa).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("mode", "fmt", "colour", "expected"),
    [
        ("CMYK", "JPEG", (0, 255, 255, 0), RED),
        ("CMYK", "TIFF", (255, 0, 255, 0), GREEN),
        ("1", "PNG", 1, (255, 255, 255)),
        ("L", "PNG", 128, (128, 128, 128)),
        ("YCbCr", "TIFF", (76, 85, 255), RED),
        ("LAB", "TIFF", (136, 208, 195), RED),  # CIELAB (53, 80, 67), sRGB red
    ],
)
def test_other_modes_convert_to_the_right_colour(mode: str, fmt: str, colour: object, expected: tuple) -> None:
    data = encode(Image.new(mode, (16, 16), colour), fmt)
    assert Image.open(io.BytesIO(data)).mode == mode
    decoded = decode_image(data).image
    assert decoded.mode == "RGB"
    assert close(decoded.getpixel((8, 8)), expected, tolerance=12), decoded.getpixel((8, 8))


def test_hsv_converts_to_rgb() -> None:
    assert close(to_rgb(Image.new("HSV", (8, 8), (85, 255, 255))).getpixel((0, 0)), GREEN, tolerance=3)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_its_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, BLUE, GREEN)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    assert close(decode_image(data).image.getpixel((16, 16)), RED, tolerance=8)


@pytest.mark.parametrize(("fmt", "params"), [("WEBP", {"quality": 90}), ("AVIF", {"quality": 90}), ("HEIF", {})])
def test_modern_formats_round_trip(fmt: str, params: dict) -> None:
    if fmt == "HEIF":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.register_heif_opener()
    data = encode(quadrants(64, 48, RED, GREEN, BLUE, YELLOW), fmt, **params)
    decoded = decode_image(data)
    assert (decoded.info.width, decoded.info.height) == (64, 48)
    assert decoded.image.mode == "RGB"
    for actual, wanted in zip(corners(decoded.image), (RED, GREEN, BLUE, YELLOW), strict=True):
        assert close(actual, wanted), actual


def test_content_decides_not_the_name(tmp_path: Path) -> None:
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is a shopping list, not a photo\n")
    with pytest.raises(NotAnImageError, match="not an image"):
        decode_image(read_file(str(fake)))
    png_named_jpg = tmp_path / "really-a-png.jpg"
    png_named_jpg.write_bytes(encode(Image.new("RGB", (16, 16), GREEN), "PNG"))
    assert decode_image(read_file(str(png_named_jpg))).image.getpixel((3, 3)) == GREEN


def test_empty_file_is_not_an_image() -> None:
    with pytest.raises(NotAnImageError, match="empty file"):
        decode_image(b"")


def test_jpeg_cut_in_half_is_truncated() -> None:
    data = encode(noise(256, 256), "JPEG", quality=90)
    with pytest.raises(TruncatedImageError, match="truncated"):
        decode_image(data[: len(data) // 2])


def test_corrupt_png_data_is_a_typed_error() -> None:
    data = bytearray(encode(noise(64, 64), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 20 : idat + 200] = bytes(180)
    with pytest.raises(TruncatedImageError):
        decode_image(bytes(data))


def png_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_header_over_the_megapixel_limit_is_refused_before_decoding() -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageTooLargeError) as caught:
        decode_image(png_claiming(40000, 40000))
    assert str(caught.value) == "40000x40000 is 1600 megapixels, over the 200 MP limit (--max-megapixels)"
    # 40000x40000 RGB would take ~6 GB; the refusal must come from the header alone.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200_000


def test_megapixel_limit_is_configurable() -> None:
    data = encode(Image.new("RGB", (1000, 1000), RED), "PNG")
    with pytest.raises(ImageTooLargeError, match=r"over the 0.5 MP limit"):
        decode_image(data, max_megapixels=0.5)
    assert decode_image(data, max_megapixels=1.0).info.width == 1000


@pytest.mark.parametrize(("size", "message"), [((1, 1), "1x1 pixels is too small"), ((7, 300), "7x300 pixels")])
def test_tiny_images_are_refused(size: tuple[int, int], message: str) -> None:
    with pytest.raises(ImageTooSmallError, match=message):
        decode_image(encode(Image.new("RGB", size), "PNG"))
    assert decode_image(encode(Image.new("RGB", (8, 8)), "PNG")).info.width == 8


def test_read_file_reports_why_it_cannot_read(tmp_path: Path) -> None:
    gone = tmp_path / "gone.jpg"
    gone.write_bytes(b"data")
    assert read_file(str(gone)) == b"data"
    gone.unlink()
    with pytest.raises(UnreadableFileError, match=r"^no such file \(it vanished\)$"):
        read_file(str(gone))
    with pytest.raises(UnreadableFileError, match=r"^is a directory$"):
        read_file(str(tmp_path))
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        read_file(str(fifo))  # must not block waiting for a writer


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_read_file_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(b"data")
    locked.chmod(0)
    with pytest.raises(UnreadableFileError, match=r"^permission denied$"):
        read_file(str(locked))


def test_read_file_handles_non_utf8_names(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"\xff\xfe.jpg")
    with open(raw, "wb") as handle:
        handle.write(b"bytes")
    assert read_file(os.fsdecode(raw)) == b"bytes"


@pytest.mark.parametrize("size", [(333, 217), (217, 333), (64, 64), (1000, 750), (50, 30)])
@pytest.mark.parametrize(
    ("resize_mode", "interpolation"),
    [("shortest", "bicubic"), ("shortest", "bilinear"), ("squash", "bicubic"), ("longest", "bicubic")],
)
def test_prepare_pixels_matches_open_clip(size: tuple[int, int], resize_mode: str, interpolation: str) -> None:
    open_clip = pytest.importorskip("open_clip")
    preprocess = open_clip.image_transform(
        64, is_train=False, resize_mode=resize_mode, interpolation=interpolation
    )
    image = noise(*size, seed=size[0])
    mean = np.array(open_clip.OPENAI_DATASET_MEAN).reshape(3, 1, 1)
    std = np.array(open_clip.OPENAI_DATASET_STD).reshape(3, 1, 1)
    expected = np.rint((preprocess(image).numpy() * std + mean) * 255).transpose(1, 2, 0)
    ours = prepare_pixels(image, 64, resize_mode=resize_mode, interpolation=interpolation)
    assert ours.dtype == np.uint8 and ours.shape == (64, 64, 3)
    assert np.abs(ours.astype(np.int16) - expected).max() <= 1


def test_prepare_pixels_longest_pads_with_black() -> None:
    pixels = prepare_pixels(Image.new("RGB", (200, 100), (255, 255, 255)), 64, resize_mode="longest")
    assert pixels[0, 32].tolist() == [0, 0, 0] and pixels[32, 32].tolist() == [255, 255, 255]
    assert pixels[63, 32].tolist() == [0, 0, 0]


def test_prepare_pixels_lanczos_and_bad_arguments() -> None:
    image = noise(120, 90)
    lanczos = prepare_pixels(image, 32, interpolation="lanczos")
    assert lanczos.shape == (32, 32, 3)
    assert not np.array_equal(lanczos, prepare_pixels(image, 32, interpolation="bilinear"))
    with pytest.raises(ValueError, match="resize_mode"):
        prepare_pixels(image, 32, resize_mode="stretch")
    with pytest.raises(ValueError, match="interpolation"):
        prepare_pixels(image, 32, interpolation="nearest")
