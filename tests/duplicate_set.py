"""A labelled set for `clipsearch duplicates`: photos, other versions of them, bursts, and look-alikes.

Each base photo gets the versions a library collects (half size, recompressed at JPEG quality 60, 5%
cropped off each side, stored turned with an EXIF orientation), a burst (the same scene re-drawn with
the subject moved a little, one second later), and a look-alike (another photo of the same colour and
shape). The set says which pairs are near duplicates and which are the same moment.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path

from photos import DEFAULT_CAMERA, write_photo
from PIL import Image
from scenes import COLOURS, SHAPES, random_scene


@dataclass(frozen=True)
class DuplicateSet:
    paths: list[Path]
    near: set[frozenset[str]]  # pairs of paths that are the same picture
    similar: set[frozenset[str]]  # pairs that are the same moment, not the same picture


def _exif_of(path: Path) -> bytes:
    return Image.open(path).info.get("exif", b"")


def _save_variant(source: Path, target: Path, change) -> None:
    image = Image.open(source)
    exif = _exif_of(source)
    changed = change(image.convert("RGB"))
    changed.save(target, "JPEG", quality=changed.info.get("quality", 90), exif=exif)


def write_duplicate_set(root: Path, count: int = 8, seed: int = 11) -> DuplicateSet:
    rng = random.Random(seed)
    pairs = rng.sample([(c, s) for c in COLOURS for s in SHAPES], count)
    root.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    near: set[frozenset[str]] = set()
    similar: set[frozenset[str]] = set()
    for n, (colour, shape) in enumerate(pairs):
        scene = random_scene(rng, kind=shape, colour=colour, size="large")
        when = datetime(2022, 5, 1, 10) + timedelta(hours=n)
        base = write_photo(root / f"base-{n}.jpg", scene, "jpeg", (1600, 1200), when).path
        versions = [base]
        half = root / f"half-{n}.jpg"
        _save_variant(base, half, lambda im: im.resize((800, 600), Image.Resampling.LANCZOS))
        recompressed = root / f"q60-{n}.jpg"
        buffer = io.BytesIO()
        Image.open(base).save(buffer, "JPEG", quality=60, exif=_exif_of(base))
        recompressed.write_bytes(buffer.getvalue())
        cropped = root / f"crop-{n}.jpg"
        _save_variant(base, cropped, lambda im: im.crop((80, 60, 1520, 1140)))
        turned = write_photo(root / f"turned-{n}.jpg", scene, "jpeg-rotated", (1600, 1200), when, 6).path
        versions += [half, recompressed, cropped, turned]
        near |= {frozenset((str(a), str(b))) for a, b in combinations(versions, 2)}
        moved = replace(scene, objects=tuple(replace(o, cx=o.cx + 0.03, cy=o.cy - 0.02) for o in scene.objects))
        burst = write_photo(root / f"burst-{n}.jpg", moved, "jpeg", (1600, 1200), when + timedelta(seconds=1)).path
        similar |= {frozenset((str(v), str(burst))) for v in versions}
        other = random_scene(rng, kind=shape, colour=colour, size="large")
        lookalike = write_photo(root / f"lookalike-{n}.jpg", other, "jpeg", (1600, 1200),
                                when + timedelta(days=30), camera=DEFAULT_CAMERA).path
        paths += [*versions, burst, lookalike]
    return DuplicateSet(paths, near, similar)
