"""Photo folders like the ones users have, drawn from the test model's scene generator.

Every file knows what it shows (its Scene, as a person sees it once EXIF orientation is
applied), so end-to-end tests can ask "is the red circle the top hit?" about real files
in the formats, sizes, names and nesting that a camera roll actually has.
"""

from __future__ import annotations

import functools
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

_MODEL_DIR = Path(__file__).resolve().parent / "model"
if str(_MODEL_DIR) not in sys.path:  # conftest does this too; repeated so scripts can import us
    sys.path.insert(0, str(_MODEL_DIR))

from scenes import COLOURS, DIRECTIONS, SHAPES, Scene, random_scene, render  # noqa: E402

FORMATS = ("jpeg", "jpeg-rotated", "png", "png-alpha", "webp", "heic")
DEFAULT_CAMERA = ("Canon", "Canon EOS 80D")
PHONE = ("Apple", "iPhone 12")
CAMERA_SIZE = (4032, 3024)

_EXIF_IFD = 0x8769
_DATE_TIME_ORIGINAL = 0x9003
_MAKE, _MODEL, _ORIENTATION = 0x010F, 0x0110, 0x0112
# What turns the upright picture into the stored pixels for each EXIF orientation: the
# inverse of what a viewer (ImageOps.exif_transpose) does to show it.
_STORE_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class Photo:
    path: Path  # absolute
    scene: Scene  # what it shows, as a person would see it (after EXIF orientation)
    format: str  # one of FORMATS
    taken_at: str | None  # the EXIF DateTimeOriginal written, ISO 8601, or None
    size: tuple[int, int]  # (width, height) as displayed; the stored pixels are turned for "jpeg-rotated"

    @property
    def name(self) -> str:
        return self.path.name


@functools.cache
def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()


def _exif(taken_at: datetime | None, orientation: int, camera: tuple[str, str]) -> bytes:
    exif = Image.Exif()
    exif[_MAKE], exif[_MODEL] = camera
    exif[_ORIENTATION] = orientation
    if taken_at is not None:
        exif.get_ifd(_EXIF_IFD)[_DATE_TIME_ORIGINAL] = f"{taken_at:%Y:%m:%d %H:%M:%S}"
    return exif.tobytes()


def _with_transparent_margins(scene: Scene, width: int, height: int) -> Image.Image:
    margin = round(min(width, height) * 0.12)
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    canvas.paste(render(scene, width - 2 * margin, height - 2 * margin).convert("RGBA"), (margin, margin))
    return canvas


def write_photo(
    path: Path,
    scene: Scene,
    fmt: str,
    size: tuple[int, int],
    taken_at: datetime | None = None,
    orientation: int = 1,
    *,
    camera: tuple[str, str] = DEFAULT_CAMERA,
) -> Photo:
    """Write `scene` as a `size` (width, height as displayed) picture in `fmt` and say what was written.

    "jpeg-rotated" stores the pixels turned so that only a viewer that applies the EXIF
    `orientation` (2-8) shows the scene upright; every other format is stored upright.
    PNGs carry EXIF only when given a date, as screenshots and exports usually carry none.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if (fmt == "jpeg-rotated") != (orientation != 1) or orientation not in (1, *_STORE_AS):
        raise ValueError(f"orientation {orientation} does not fit format {fmt!r}")
    taken_at = taken_at.replace(microsecond=0) if taken_at else None
    width, height = size
    path = path.absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = _exif(taken_at, orientation, camera)
    image = _with_transparent_margins(scene, width, height) if fmt == "png-alpha" else render(scene, width, height)
    if fmt in ("jpeg", "jpeg-rotated"):
        stored = image.transpose(_STORE_AS[orientation]) if orientation != 1 else image
        stored.save(path, format="JPEG", quality=90, exif=exif)
    elif fmt in ("png", "png-alpha"):
        image.save(path, format="PNG", **({"exif": exif} if taken_at else {}))
    elif fmt == "webp":
        image.save(path, format="WEBP", quality=90, exif=exif)
    else:
        _register_heif()
        image.save(path, format="HEIF", quality=90, exif=exif)
    return Photo(path=path, scene=scene, format=fmt, taken_at=taken_at.isoformat() if taken_at else None,
                 size=(width, height))


@dataclass(frozen=True)
class _Shot:
    scene: Scene
    fmt: str
    size: tuple[int, int]
    orientation: int = 1


def _dates(rng: random.Random, start: datetime, count: int) -> Iterator[datetime]:
    moment = start
    for _ in range(count):
        moment += timedelta(minutes=rng.randint(7, 900), seconds=rng.randint(0, 59))
        yield moment


def write_photo_library(root: Path, seed: int = 7) -> list[Photo]:
    """About 60 photos in nested folders: every colour-and-shape pair once, arrows, and two-object scenes.

    Mostly camera and phone JPEGs with EXIF dates (3 at full camera size, several stored
    rotated with an orientation tag), plus HEIC, WebP, screenshots as PNG and PNG
    stickers with transparent margins. The same seed gives the same files, byte for byte.
    """
    rng = random.Random(seed)
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    rng.shuffle(pairs)
    # Large single objects: each file is one unmistakable answer to "a <colour> <shape>".
    shapes = [random_scene(rng, kind=shape, colour=colour, size="large") for colour, shape in pairs]
    arrows = [random_scene(rng, kind="arrow", direction=d, size="large") for d in DIRECTIONS]
    turned_arrows = [random_scene(rng, kind="arrow", direction=d, size="large") for d in DIRECTIONS]
    duos = [random_scene(rng, kind=rng.choice(SHAPES), pair=True) for _ in range(4)]
    landscape, portrait = (1600, 1200), (1200, 1600)

    summer = [_Shot(s, "jpeg", CAMERA_SIZE if i < 2 else portrait if i % 4 == 3 else landscape)
              for i, s in enumerate(shapes[0:14])]
    summer += [_Shot(s, "jpeg", landscape) for s in duos[:2]]
    year_2020 = [_Shot(s, "jpeg", CAMERA_SIZE if i == 0 else landscape) for i, s in enumerate(shapes[14:25])]
    year_2020 += [_Shot(s, "jpeg", landscape) for s in arrows + duos[2:]]
    # Phones store the sensor's landscape pixels and say how to turn them.
    phone = [_Shot(s, "heic", (1200, 900)) for s in shapes[25:29]]
    phone += [_Shot(s, "jpeg-rotated", size, o)
              for s, (size, o) in zip(shapes[29:32], [(portrait, 6), (portrait, 8), (landscape, 3)])]
    phone += [_Shot(s, "jpeg", landscape) for s in shapes[32:35]]
    phone += [_Shot(s, "jpeg-rotated", size, o)
              for s, (size, o) in zip(turned_arrows, [(portrait, 6), (portrait, 8), (landscape, 3), (landscape, 6)])]
    screenshots = [_Shot(s, "png", (1440, 900)) for s in shapes[35:40]]
    downloads = [_Shot(s, "webp", (1200, 800)) for s in shapes[40:44]]
    stickers = [_Shot(s, "png-alpha", (1024, 1024)) for s in shapes[44:48]]
    for shots in (summer, year_2020, phone):
        rng.shuffle(shots)

    photos = []
    for k, (shot, when) in enumerate(zip(summer, _dates(rng, datetime(2019, 7, 6, 9), len(summer)))):
        name = "Plage d'été.jpg" if k == 3 else f"DSC_{4810 + k:04d}.JPG"
        photos.append(write_photo(root / "2019" / "summer" / name, shot.scene, shot.fmt, shot.size, when,
                                  camera=("NIKON CORPORATION", "NIKON D750")))
    for shot, when in zip(year_2020, _dates(rng, datetime(2020, 5, 2, 8), len(year_2020))):
        photos.append(write_photo(root / "2020" / f"IMG_{when:%Y%m%d_%H%M%S}.jpg", shot.scene, shot.fmt,
                                  shot.size, when))
    for k, (shot, when) in enumerate(zip(phone, _dates(rng, datetime(2023, 4, 15, 7), len(phone)))):
        suffix = "HEIC" if shot.fmt == "heic" else "JPG"
        photos.append(write_photo(root / "phone" / "DCIM" / "100APPLE" / f"IMG_{1001 + k:04d}.{suffix}", shot.scene,
                                  shot.fmt, shot.size, when, shot.orientation, camera=PHONE))
    for shot, when in zip(screenshots, _dates(rng, datetime(2021, 3, 4, 10), len(screenshots))):
        name = f"Screenshot {when:%Y-%m-%d at %H.%M.%S}.png"
        photos.append(write_photo(root / "screenshots" / name, shot.scene, shot.fmt, shot.size))
    for k, (shot, when) in enumerate(zip(downloads, _dates(rng, datetime(2022, 1, 9, 18), len(downloads)))):
        name = "image.webp" if k == 0 else f"image ({k}).webp"
        photos.append(write_photo(root / "downloads" / name, shot.scene, shot.fmt, shot.size,
                                  when if k % 2 == 0 else None))
    for k, shot in enumerate(stickers):
        photos.append(write_photo(root / "exports" / "stickers" / f"sticker-{k + 1:02d}.png", shot.scene,
                                  shot.fmt, shot.size))
    return photos
