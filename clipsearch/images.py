"""Turn one file's bytes into an upright RGB picture, or a typed error that says why not."""

from __future__ import annotations

import io
import os
import stat
import threading
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image, UnidentifiedImageError

from clipsearch.errors import (
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TruncatedImageError,
    UnreadableFileError,
)

MIN_SIDE = 8
RESIZE_MODES = ("shortest", "squash", "longest")
INTERPOLATIONS: dict[str, Image.Resampling] = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
}

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_ORIENTATION = 0x0112
_ORIENTATION_OPS: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    taken_at: str | None


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image
    info: ImageInfo


_setup_lock = threading.Lock()
_setup_done = False


def _setup_pillow() -> None:
    """Register HEIF lazily (import cost stays off `import clipsearch`) and hand the pixel limit to us."""
    global _setup_done
    if _setup_done:
        return
    with _setup_lock:
        if _setup_done:
            return
        # We check the header size against --max-megapixels ourselves right after open; Pillow's own
        # bomb check would otherwise fire first with a lower, unconfigurable limit.
        Image.MAX_IMAGE_PIXELS = None
        try:
            import pillow_heif
        except ImportError:  # pragma: no cover - optional at runtime; HEIC files then read as not-an-image
            pass
        else:
            pillow_heif.register_heif_opener()
        _setup_done = True


def read_file(path: str) -> bytes:
    """Read a whole file; a FIFO or device is refused rather than blocking the indexer forever."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise UnreadableFileError("is a directory") from None
    except FileNotFoundError:
        raise UnreadableFileError("no such file (it vanished)") from None
    except OSError as exc:
        raise UnreadableFileError(_describe_os_error(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UnreadableFileError("is a directory")
        if not stat.S_ISREG(mode):
            raise UnreadableFileError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    except OSError as exc:
        raise UnreadableFileError(_describe_os_error(exc)) from None
    finally:
        os.close(fd)


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "no such file (it vanished)"
    return " ".join((exc.strerror or str(exc)).lower().split())


def decode_image(data: bytes, *, target_size: int | None = None, max_megapixels: float = 200.0) -> DecodedImage:
    """Decode bytes to an RGB image with EXIF orientation applied; the content decides the format, not the name.

    With target_size, JPEGs are decoded at a reduced scale whose short side stays >= target_size.
    """
    if not data:
        raise NotAnImageError("empty file")
    _setup_pillow()
    try:
        return _decode(data, target_size, max_megapixels)
    except ImageError:
        raise
    except MemoryError:
        raise ImageTooLargeError("not enough memory to decode it") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(_one_line(exc)) from None
    except (OSError, SyntaxError, EOFError) as exc:
        raise TruncatedImageError(_corrupt_reason(exc)) from None
    except Exception as exc:  # Pillow plugins raise ValueError, struct.error, IndexError... on hostile data
        raise TruncatedImageError(f"corrupt image data ({_one_line(exc)})") from None


def _decode(data: bytes, target_size: int | None, max_megapixels: float) -> DecodedImage:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise NotAnImageError("not an image (unrecognised content)") from None
    width, height = image.size
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise ImageTooLargeError(
            f"{width}x{height} is {megapixels:.0f} megapixels, over the {max_megapixels:g} MP limit (--max-megapixels)"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmallError(f"{width}x{height} pixels is too small to search")
    if target_size is not None and image.format in _DRAFT_FORMATS:
        # The decoder scales by 1/2, 1/4 or 1/8 while keeping both sides >= the request: much faster, less memory.
        image.draft("RGB", (target_size, target_size))
    image.load()  # animated GIF/WebP: the first frame, which open() leaves selected
    orientation, taken_at = _read_exif(image)
    rgb = to_rgb(image)
    operation = _ORIENTATION_OPS.get(orientation)
    if operation is not None:
        rgb = rgb.transpose(operation)
        if operation in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90,
                         Image.Transpose.ROTATE_270):
            width, height = height, width
    return DecodedImage(image=rgb, info=ImageInfo(width=width, height=height, taken_at=taken_at))


def _read_exif(image: Image.Image) -> tuple[int, str | None]:
    """Orientation and capture time; broken EXIF is common and never fails the image."""
    try:
        exif = image.getexif()
        orientation = exif.get(_ORIENTATION, 1)
        taken = _parse_exif_datetime(exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL))
        if taken is None:
            taken = _parse_exif_datetime(exif.get(_DATETIME))
    except Exception:
        return 1, None
    return (orientation if isinstance(orientation, int) else 1), taken


def _parse_exif_datetime(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip().strip("\x00").strip()
    # Cameras write "YYYY:MM:DD HH:MM:SS"; some software uses dashes or a T.
    if len(text) < 19:
        return None
    text = text[:4] + "-" + text[5:7] + "-" + text[8:10] + "T" + text[11:19]
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").isoformat()
    except ValueError:
        return None  # "0000:00:00 00:00:00" and other placeholders


def to_rgb(image: Image.Image) -> Image.Image:
    """Every Pillow mode to a sensible RGB: transparency over white, high bit depths stretched to their range."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in ("I", "F") or mode.startswith("I;"):
        return _stretch_to_rgb(image)
    try:
        if mode == "LAB":
            return _lab_to_rgb(image)
        if "A" in mode or "a" in mode or "transparency" in image.info:
            # Pillow has no direct La (premultiplied) to RGBA conversion; LA is the way round.
            rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")
            background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError:  # Pillow: "conversion from X to Y not supported"
        raise NotAnImageError(f"unsupported image mode {mode}") from None


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    # Pillow's plain convert copies LAB bands as if they were RGB; it takes a colour transform.
    from PIL import ImageCms  # littlecms load only for the rare LAB file

    lab = ImageCms.createProfile("LAB")
    srgb = ImageCms.createProfile("sRGB")
    transform = ImageCms.buildTransform(lab, srgb, "LAB", "RGB")
    converted = ImageCms.applyTransform(image, transform)
    assert converted is not None  # None only with inPlace=True
    return converted


def _stretch_to_rgb(image: Image.Image) -> Image.Image:
    values = np.asarray(image).astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return Image.new("RGB", image.size)
    low = float(values[finite].min())
    high = float(values[finite].max())
    values = np.where(finite, values, low)
    if high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        # A flat image has no range to stretch: place it on the scale its bit depth implies.
        full_scale = 65535.0 if image.mode.startswith("I;16") else 255.0
        scaled = np.full_like(values, min(max(low, 0.0), full_scale) * 255.0 / full_scale)
    grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    return grey.convert("RGB")


def prepare_pixels(
    image: Image.Image, image_size: int, resize_mode: str = "shortest", interpolation: str = "bicubic"
) -> np.ndarray:
    """open_clip's evaluation resize and crop (torchvision semantics on PIL), as uint8 HxWx3; no normalisation."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}, not {resize_mode!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, not {image_size}")
    resample = INTERPOLATIONS[interpolation]
    if image.mode != "RGB":
        image = to_rgb(image)
    width, height = image.size
    if resize_mode == "squash":
        image = _resize(image, (image_size, image_size), resample)
    elif resize_mode == "shortest":
        # torchvision Resize(int): short side to size, long side truncated (not rounded).
        if width <= height:
            new_size = (image_size, int(image_size * height / width))
        else:
            new_size = (int(image_size * width / height), image_size)
        image = _resize(image, new_size, resample)
    else:
        # open_clip ResizeKeepRatio(longest=1): Python round() on both sides.
        ratio = max(height / image_size, width / image_size)
        image = _resize(image, (round(width / ratio), round(height / ratio)), resample)
    return np.array(_center_crop_or_pad(image, image_size), dtype=np.uint8)


def _resize(image: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    if image.size == size:
        return image  # torchvision skips the resize too, so the pixels stay bit-identical
    return image.resize(size, resample)


def _center_crop_or_pad(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width < size or height < size:
        left = (size - width) // 2 if size > width else 0
        top = (size - height) // 2 if size > height else 0
        right = (size - width + 1) // 2 if size > width else 0
        bottom = (size - height + 1) // 2 if size > height else 0
        padded = Image.new("RGB", (width + left + right, height + top + bottom), (0, 0, 0))
        padded.paste(image, (left, top))
        image = padded
        width, height = image.size
        if width == size and height == size:
            return image
    top = round((height - size) / 2.0)  # round half to even, like torchvision
    left = round((width - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def _corrupt_reason(exc: BaseException) -> str:
    text = _one_line(exc)
    if "truncated" in text.lower():
        return "image file is truncated"
    return f"corrupt image data ({text})" if text else "corrupt image data"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__
