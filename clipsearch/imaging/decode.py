"""Turn one file's bytes into an upright RGB picture, or a typed error that says why not."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
from dataclasses import dataclass
from datetime import datetime

from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from clipsearch.config import DEFAULT_MAX_MEGAPIXELS
from clipsearch.errors import (
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TruncatedImageError,
    UnreadableFileError,
    describe_os_error,
)
from clipsearch.imaging.pixels import to_rgb

MIN_SIDE = 8
MAX_METADATA_CHUNK = 32 << 20
# What decoding one file may hold, at most: the pixels as the decoder holds them (bands x bytes a sample), which a
# pixel count alone does not bound (a 16-bit RGBA PNG holds 8 bytes a pixel, and PNG decodes at full size).
DECODE_BUDGET_BYTES = 1 << 30

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_MAKE = 0x010F
_MODEL = 0x0110
_ORIENTATION = 0x0112
_QUARTER_TURNS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})


@dataclass(frozen=True)
class ImageInfo:
    width: int  # upright, at full size
    height: int
    taken_at: str | None
    camera_make: str | None = None
    camera_model: str | None = None


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
        # A PNG's ICC profile (iCCP) or text chunk may decompress to this much: Pillow's 1 MB refuses real
        # print profiles of several MB, while a cap still bounds a decompression bomb in a chunk.
        PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, MAX_METADATA_CHUNK)
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
        raise UnreadableFileError(describe_os_error(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UnreadableFileError("is a directory")
        if not stat.S_ISREG(mode):
            raise UnreadableFileError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    except FileNotFoundError:
        raise UnreadableFileError("no such file (it vanished)") from None
    except OSError as exc:
        raise UnreadableFileError(describe_os_error(exc)) from None
    finally:
        os.close(fd)


def decode_image(data: bytes, *, target_size: int | None = None,
                 max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> DecodedImage:
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


def check_image(data: bytes, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> tuple[int, int]:
    """Width and height from the header alone, or the ImageError that decoding would give: cheap, so a file
    can be refused before a model is loaded for it."""
    if not data:
        raise NotAnImageError("empty file")
    _setup_pillow()
    try:
        return _open_checked(data, max_megapixels).size
    except ImageError:
        raise
    except Exception as exc:
        raise TruncatedImageError(_corrupt_reason(exc)) from None


def _open_checked(data: bytes, max_megapixels: float) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise NotAnImageError("not an image (unrecognised content)") from None
    width, height = image.size
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise ImageTooLargeError(
            f"{width}x{height} is {megapixels:.0f} megapixels, over the {max_megapixels:g} MP limit (--max-megapixels)",
            megapixels=megapixels,
        )
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmallError(f"{width}x{height} pixels is too small to search")
    bands, sample_bytes = _sample_layout(image)
    needed = width * height * bands * sample_bytes
    if needed > DECODE_BUDGET_BYTES:
        raise ImageTooLargeError(
            f"{width}x{height} with {bands} bands of {8 * sample_bytes} bits needs {needed / (1 << 30):.1f} GB to "
            f"decode, over the {DECODE_BUDGET_BYTES / (1 << 30):g} GB limit")
    return image


def _sample_layout(image: Image.Image) -> tuple[int, int]:
    """Bands, and bytes a sample, of the pixels as the file stores them (its raw mode: a 16-bit PNG reads as 8-bit
    mode RGBA, from rawmode RGBA;16B) or as Pillow holds them, whichever is larger."""
    sample_bytes = 4 if image.mode in ("I", "F") else 2 if image.mode.startswith("I;16") else 1
    for tile in image.tile or ():
        args = tile[3] if len(tile) > 3 else None
        rawmode = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else ""
        if isinstance(rawmode, str) and ("16" in rawmode or "32" in rawmode):
            sample_bytes = max(sample_bytes, 4 if "32" in rawmode else 2)
    return len(image.getbands()), sample_bytes


def _decode(data: bytes, target_size: int | None, max_megapixels: float) -> DecodedImage:
    image = _open_checked(data, max_megapixels)
    width, height = image.size
    if target_size is not None and image.format in _DRAFT_FORMATS:
        # The decoder scales by 1/2, 1/4 or 1/8 while keeping both sides >= the request: much faster, less memory.
        image.draft("RGB", (target_size, target_size))
    image.load()  # animated GIF/WebP: the first frame, which open() leaves selected
    taken_at, make, model = _exif_facts(image)
    # Upright before anything else: a conversion below may make a new image without the EXIF to turn it by.
    before = image.size
    with contextlib.suppress(Exception):  # broken EXIF is common, and never fails the image
        ImageOps.exif_transpose(image, in_place=True)
    if image.size != before:  # turned by a quarter: the full-size dimensions swap too
        width, height = height, width
    return DecodedImage(image=to_rgb(image), info=ImageInfo(width, height, taken_at, make, model))


def read_facts(data: bytes) -> ImageInfo:
    """Dimensions (upright), capture time and camera from the header alone, without decoding the pixels."""
    _setup_pillow()
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        taken_at, make, model = _exif_facts(image)
        if image.getexif().get(_ORIENTATION) in _QUARTER_TURNS:
            width, height = height, width
    except Exception as exc:
        raise TruncatedImageError(_corrupt_reason(exc)) from None
    return ImageInfo(width, height, taken_at, make, model)


def _exif_facts(image: Image.Image) -> tuple[str | None, str | None, str | None]:
    """Capture time, camera make and model from EXIF; broken EXIF is common and never fails the image."""
    try:
        exif = image.getexif()
        taken = _parse_exif_datetime(exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL))
        if taken is None:
            taken = _parse_exif_datetime(exif.get(_DATETIME))
        return taken, _exif_text(exif.get(_MAKE)), _exif_text(exif.get(_MODEL))
    except Exception:
        return None, None, None


def _exif_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = " ".join(value.replace("\x00", " ").split())
    return text[:100] or None


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


def _corrupt_reason(exc: BaseException) -> str:
    text = _one_line(exc)
    if "truncated" in text.lower():
        return "image file is truncated"
    return f"corrupt image data ({text})" if text else "corrupt image data"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__
