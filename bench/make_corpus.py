"""Write a folder of camera-like photos to benchmark `clipsearch index` on.

    python bench/make_corpus.py --n 2000 --seed 0 /tmp/corpus

The mix is what a photo library holds: about 80% camera JPEGs (4000x3000, quality 90, EXIF
Make/Model/DateTimeOriginal), 8% phone portraits stored landscape (4032x3024) with EXIF
orientation 6 or 8, 6% PNG screenshots (2560x1600) and 6% WebP exports (2048x1536, quality 85),
in nested folders (YYYY/MM/, YYYY/phone/, screenshots/, exports/YYYY/).

Decoding time depends on how much entropy a file holds, so the photos are made to weigh what
real ones do (3-5 MB for a 12 MP JPEG): each is a mosaic of jittered, flipped crops of real
sample photos bundled with scikit-learn and scikit-image (`pip install ".[bench]"`; nothing is
downloaded), upscaled, then given sensor noise and film grain. Without those packages the
crops come from procedural pictures instead, and the script says so.

The output depends only on --n and --seed (not on --jobs): every file, its bytes and its
modification time (set to its capture time) are the same on every run.
"""

from __future__ import annotations

import argparse
import calendar
import importlib.util
import io
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw

SHARES = {"camera": 0.80, "phone": 0.08, "screenshot": 0.06, "webp": 0.06}
SIZES = {"camera": (4000, 3000), "phone": (4032, 3024), "screenshot": (2560, 1600), "webp": (2048, 1536)}
LABELS = {"camera": "camera JPEG", "phone": "phone JPEG (rotated)", "screenshot": "screenshot PNG", "webp": "WebP"}
CAMERAS = (("Canon", "Canon EOS 80D"), ("NIKON CORPORATION", "NIKON D7500"), ("SONY", "ILCE-6400"),
           ("FUJIFILM", "X-T30"))
PHONES = (("Apple", "iPhone 12"), ("Google", "Pixel 7"), ("samsung", "SM-G991B"))
JPEG_QUALITY = 90
WEBP_QUALITY = 85
# Sensor noise levels ("ISO"): luma sigma, film-grain sigma (2-pixel grain), chroma sigma (blotchy, half
# resolution). Tuned so that 12 MP JPEGs at quality 90 land at 3-5 MB, as real camera files do.
NOISE_LEVELS = ((6.0, 3.5, 2.5), (8.0, 4.5, 3.0))
BANK_MARGIN = 160

# Sample photos shipped inside PyPI packages (no download): (package, path inside it, colour?).
SAMPLES = (
    ("sklearn", "datasets/images/china.jpg", True),
    ("sklearn", "datasets/images/flower.jpg", True),
    ("skimage", "data/astronaut.png", True),
    ("skimage", "data/chelsea.png", True),
    ("skimage", "data/coffee.png", True),
    ("skimage", "data/rocket.jpg", True),
    ("skimage", "data/motorcycle_left.png", True),
    ("skimage", "data/motorcycle_right.png", True),
    ("skimage", "data/hubble_deep_field.jpg", True),
    ("skimage", "data/camera.png", False),
    ("skimage", "data/grass.png", False),
    ("skimage", "data/gravel.png", False),
    ("skimage", "data/brick.png", False),
    ("skimage", "data/coins.png", False),
)

_EXIF_IFD, _DATETIME_ORIGINAL = 0x8769, 0x9003
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
# Stored pixels for an upright picture: the inverse of what a viewer does for each orientation.
_STORE_AS = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class Shot:
    index: int
    kind: str
    relpath: str
    taken_at: datetime
    orientation: int = 1
    camera: tuple[str, str] = ("", "")


# ---------------------------------------------------------------------------------------------------------------
# The plan: which file is what, decided up front from the seed alone.


def plan(n: int, seed: int) -> list[Shot]:
    rng = np.random.default_rng([seed, 0x5EED])
    counts = {kind: round(n * share) for kind, share in SHARES.items() if kind != "camera"}
    if n >= len(SHARES):  # small smoke corpora still get one of each kind
        counts = {kind: max(1, count) for kind, count in counts.items()}
    counts["camera"] = max(0, n - sum(counts.values()))
    kinds = [kind for kind in SHARES for _ in range(counts[kind])][:n]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    start = datetime(2015, 1, 1)
    span = int((datetime(2025, 1, 1) - start).total_seconds())
    shots = []
    for index, kind in enumerate(kinds):
        taken = start + timedelta(seconds=int(rng.integers(span)))
        if kind == "camera":
            relpath = f"{taken:%Y}/{taken:%m}/IMG_{index + 1:05d}.JPG"
            shot = Shot(index, kind, relpath, taken, 1, CAMERAS[int(rng.integers(len(CAMERAS)))])
        elif kind == "phone":
            relpath = f"{taken:%Y}/phone/PXL_{taken:%Y%m%d_%H%M%S}_{index + 1:05d}.jpg"
            shot = Shot(index, kind, relpath, taken, int(rng.choice([6, 8])), PHONES[int(rng.integers(len(PHONES)))])
        elif kind == "screenshot":
            shot = Shot(index, kind, f"screenshots/Screenshot {taken:%Y-%m-%d at %H.%M.%S} ({index + 1}).png", taken)
        else:
            shot = Shot(index, kind, f"exports/{taken:%Y}/export_{index + 1:05d}.webp", taken)
        shots.append(shot)
    return shots


# ---------------------------------------------------------------------------------------------------------------
# Per-process state: the sample photos and the noise banks (built once per worker, from the seed alone).

_state: dict = {}


def sample_sources() -> tuple[list[tuple[str, Path, bool]], str]:
    """The bundled sample photos that are present, and a line saying where they come from."""
    found: list[tuple[str, Path, bool]] = []
    packages = {}
    for package, relpath, colour in SAMPLES:
        spec = importlib.util.find_spec(package)  # finds without importing
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(next(iter(spec.submodule_search_locations))) / relpath
        if path.is_file():
            found.append((f"{package}:{path.name}", path, colour))
            packages[package] = _version(package)
    if not found:
        return [], ("no sample photos: neither scikit-learn nor scikit-image is installed "
                    "(pip install '.[bench]'); using procedural pictures, which are less photo-like")
    names = ", ".join(name.split(":")[1] for name, _, _ in found)
    versions = ", ".join(f"{package} {version}" for package, version in packages.items())
    return found, f"{len(found)} sample photos from {versions}: {names}"


def _version(package: str) -> str:
    from importlib import metadata

    name = {"sklearn": "scikit-learn", "skimage": "scikit-image"}.get(package, package)
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _init_worker(seed: int, procedural: bool) -> None:
    if _state.get("key") == (seed, procedural):
        return
    samples = []
    if not procedural:
        for name, path, colour in sample_sources()[0]:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB" if colour else "L"))
            samples.append((name, pixels, colour))
    _state.clear()
    _state.update(key=(seed, procedural), samples=samples, banks=_noise_banks(seed),
                  glyphs=_glyphs(np.random.default_rng([seed, 0x61F])))


def _noise_banks(seed: int) -> list[Image.Image]:
    """Noise images a little larger than the largest photo; each photo adds a crop of one at a random offset.

    Drawing 36 M Gaussian samples per photo would dominate the run time; cropping a bank and adding it with
    Pillow's saturating add costs a memcpy. Values are centred on 128 for ImageChops.add(offset=-128).
    """
    width = max(w for w, h in SIZES.values()) + BANK_MARGIN
    height = max(h for w, h in SIZES.values()) + BANK_MARGIN
    banks = []
    for level, (luma_sigma, grain_sigma, chroma_sigma) in enumerate(NOISE_LEVELS):
        rng = np.random.default_rng([seed, 0xBA4C, level])
        luma = rng.standard_normal((height, width), dtype=np.float32) * luma_sigma
        luma += _upscale_f(rng.standard_normal((height // 2, width // 2), dtype=np.float32) * grain_sigma,
                           (width, height))
        noise = np.empty((height, width, 3), dtype=np.float32)
        for channel in range(3):
            chroma = rng.standard_normal((height // 2, width // 2), dtype=np.float32) * chroma_sigma
            noise[..., channel] = luma + _upscale_f(chroma, (width, height))
        noise += 128.5
        banks.append(Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)))
    return banks


def _upscale_f(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(values).resize(size, Image.Resampling.BILINEAR))


def _glyphs(rng: np.random.Generator, count: int = 80) -> np.ndarray:
    """Letter-like bitmaps for screenshot text: a few strokes in a 12x7 box, bool count x 12 x 7."""
    glyphs = np.zeros((count, 12, 7), dtype=bool)
    for glyph in glyphs:
        x_height = int(rng.integers(0, 2)) * 3  # short letters start lower
        for _ in range(int(rng.integers(2, 4))):
            if rng.random() < 0.5:  # vertical stroke
                x = int(rng.integers(0, 7))
                glyph[x_height + int(rng.integers(0, 3)):12, x] = True
            else:  # horizontal stroke
                y = int(rng.integers(x_height, 12))
                glyph[y, int(rng.integers(0, 3)):int(rng.integers(4, 7))] = True
    return glyphs


# ---------------------------------------------------------------------------------------------------------------
# Pictures.


def _sample(rng: np.random.Generator) -> np.ndarray:
    """One source picture, RGB uint8: a bundled sample photo (greys tinted), or a procedural one."""
    samples = _state["samples"]
    if not samples:
        return _procedural(rng)
    _, pixels, colour = samples[int(rng.integers(len(samples)))]
    if colour:
        return pixels
    tint = rng.uniform(0.75, 1.1, size=3).astype(np.float32)
    return np.clip(pixels[..., None].astype(np.float32) * tint, 0, 255).astype(np.uint8)


def _procedural(rng: np.random.Generator, width: int = 512, height: int = 384) -> np.ndarray:
    """Sky-and-ground gradient, soft multi-scale texture and a few shapes: a stand-in for a photo."""
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    top, bottom = rng.uniform(40, 230, 3), rng.uniform(20, 200, 3)
    horizon = rng.uniform(0.3, 0.7)
    image = np.where(y < horizon, top + (bottom - top) * y, bottom * (1.2 - y * 0.5)).astype(np.float32)
    image = np.broadcast_to(image, (height, width, 3)).copy()
    for cells, amplitude in ((4, 40.0), (16, 20.0), (64, 10.0)):
        coarse = rng.standard_normal((cells * height // width + 1, cells, 3)).astype(np.float32)
        layer = np.stack([_upscale_f(coarse[..., c], (width, height)) for c in range(3)], axis=-1)
        image += layer * amplitude
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        x1, y1 = x0 + int(rng.integers(20, width // 2)), y0 + int(rng.integers(20, height // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    return np.asarray(picture)


def _split(rng: np.random.Generator, width: int, height: int, tiles: int) -> list[tuple[int, int, int, int]]:
    """Guillotine-cut the canvas into `tiles` rectangles (x, y, w, h), always cutting the largest one."""
    rects = [(0, 0, width, height)]
    while len(rects) < tiles:
        rects.sort(key=lambda r: r[2] * r[3])
        x, y, w, h = rects.pop()
        if w >= h:
            cut = int(w * rng.uniform(0.35, 0.65))
            rects += [(x, y, cut, h), (x + cut, y, w - cut, h)]
        else:
            cut = int(h * rng.uniform(0.35, 0.65))
            rects += [(x, y, w, cut), (x, y + cut, w, h - cut)]
    return rects


def _compose(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A photo-like picture at width x height: a mosaic of jittered crops, graded, vignetted, upscaled 4x."""
    small_w, small_h = max(8, width // 4), max(8, height // 4)
    canvas = np.empty((small_h, small_w, 3), dtype=np.float32)
    tiles = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.15, 0.2]))
    for x, y, w, h in _split(rng, small_w, small_h, tiles):
        source = _sample(rng)
        src_h, src_w = source.shape[:2]
        scale = rng.uniform(0.45, 1.0)  # how much of the largest crop of the tile's shape to take
        crop_w = max(8, int(min(src_w, src_h * w / h) * scale))
        crop_h = max(8, int(min(src_h, src_w * h / w) * scale))
        left, top = int(rng.integers(0, src_w - crop_w + 1)), int(rng.integers(0, src_h - crop_h + 1))
        crop = Image.fromarray(source[top:top + crop_h, left:left + crop_w])
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        tile = np.asarray(crop.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
        gains = rng.uniform(0.85, 1.15, size=3).astype(np.float32) * rng.uniform(0.8, 1.2)  # colour, brightness
        canvas[y:y + h, x:x + w] = tile * gains + rng.uniform(-12, 12)
    # Global grade: contrast around mid-grey, then a lens vignette.
    canvas = (canvas - 128.0) * rng.uniform(0.85, 1.2) + 128.0
    ys, xs = np.ogrid[-1:1:small_h * 1j, -1:1:small_w * 1j]
    vignette = 1.0 - rng.uniform(0.0, 0.35) * ((xs * xs + ys * ys) / 2.0)
    canvas *= vignette.astype(np.float32)[..., None]
    small = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    return small.resize((width, height), Image.Resampling.BICUBIC)


def _add_noise(rng: np.random.Generator, picture: Image.Image) -> Image.Image:
    bank = _state["banks"][int(rng.integers(len(_state["banks"])))]
    left = int(rng.integers(0, bank.width - picture.width + 1))
    top = int(rng.integers(0, bank.height - picture.height + 1))
    noise = bank.crop((left, top, left + picture.width, top + picture.height))
    return ImageChops.add(picture, noise, 1.0, -128)  # clip(picture + noise - 128): a saturating add


def _screenshot(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Flat UI areas (title bar, sidebar, cards, buttons), lines of text and sometimes a photo on show."""
    dark = rng.random() < 0.35
    background = rng.integers(20, 45, 3) if dark else rng.integers(235, 256, 3)
    ink = np.array([215, 215, 215] if dark else [30, 30, 35], dtype=np.uint8)
    accent = rng.integers(0, 256, 3).astype(np.uint8)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = background
    bar = int(rng.integers(56, 96))
    side = int(rng.integers(240, 420))
    image[:bar] = np.clip(background.astype(int) + (-18 if not dark else 18), 0, 255)
    image[bar:, :side] = np.clip(background.astype(int) + (-10 if not dark else 10), 0, 255)
    _text(rng, image, (side // 2 - 120, bar // 2 - 8, 300, 20), ink, line=24)
    _text(rng, image, (24, bar + 24, side - 48, height - bar - 48), ink, line=int(rng.integers(34, 48)))
    x, y = side + 40, bar + 40
    main_w = width - x - 40
    if rng.random() < 0.5:  # a photo in the window: a browser, a viewer, a chat
        photo_w = int(main_w * rng.uniform(0.45, 0.75)) // 4 * 4
        photo_h = int(photo_w * rng.uniform(0.55, 0.8)) // 4 * 4
        image[y:y + photo_h, x:x + photo_w] = np.asarray(_compose(rng, photo_w, photo_h))
        _text(rng, image, (x + photo_w + 40, y, main_w - photo_w - 40, photo_h), ink, line=28)
        y += photo_h + 40
    while y < height - 140:  # cards of text, each with a button
        card_h = int(rng.integers(120, 320))
        card_h = min(card_h, height - y - 40)
        image[y:y + card_h, x:x + main_w] = np.clip(background.astype(int) + (8 if dark else -6), 0, 255)
        _text(rng, image, (x + 24, y + 20, main_w - 48, card_h - 80), ink, line=int(rng.integers(24, 32)))
        image[y + card_h - 52:y + card_h - 16, x + 24:x + 24 + int(rng.integers(90, 200))] = accent
        y += card_h + 24
    return Image.fromarray(image)


def _text(rng: np.random.Generator, image: np.ndarray, box: tuple[int, int, int, int], ink: np.ndarray,
          line: int) -> None:
    """Ragged lines of letter-like glyphs in box (x, y, w, h), drawn in place."""
    glyphs = _state["glyphs"]
    x, y, w, h = box
    cell_w = 9
    rows, cols = max(0, h // line), max(0, w // cell_w)
    if rows == 0 or cols == 0:
        return
    chars = rng.integers(0, len(glyphs), (rows, cols))
    present = rng.random((rows, cols)) > 0.17  # gaps between words
    lengths = rng.integers(cols // 3, cols + 1, rows)  # ragged right edge
    present &= np.arange(cols)[None, :] < lengths[:, None]
    cells = np.zeros((rows, line, cols, cell_w), dtype=bool)
    top = (line - glyphs.shape[1]) // 2
    cells[:, top:top + glyphs.shape[1], :, 1:1 + glyphs.shape[2]] = (
        glyphs[chars] & present[..., None, None]).transpose(0, 2, 1, 3)
    mask = cells.reshape(rows * line, cols * cell_w)
    edge = np.zeros_like(mask)  # anti-aliasing: half-tone pixels to the right of and below each stroke
    edge[:, 1:] |= mask[:, :-1]
    edge[1:, :] |= mask[:-1, :]
    edge &= ~mask
    region = image[y:y + mask.shape[0], x:x + mask.shape[1]]
    edge, mask = edge[:region.shape[0], :region.shape[1]], mask[:region.shape[0], :region.shape[1]]
    region[edge] = (region[edge].astype(np.uint16) + ink) // 2
    region[mask] = ink


def _exif(shot: Shot) -> bytes:
    exif = Image.Exif()
    exif[_MAKE], exif[_MODEL] = shot.camera
    exif[_ORIENTATION] = shot.orientation
    stamp = f"{shot.taken_at:%Y:%m:%d %H:%M:%S}"
    exif[_DATETIME] = stamp
    exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = stamp
    return exif.tobytes()


def render(shot: Shot, seed: int) -> bytes:
    """The file's bytes."""
    rng = np.random.default_rng([seed, shot.index])
    width, height = SIZES[shot.kind]
    buffer = io.BytesIO()
    if shot.kind == "camera":
        picture = _add_noise(rng, _compose(rng, width, height))
        picture.save(buffer, format="JPEG", quality=JPEG_QUALITY, exif=_exif(shot))
    elif shot.kind == "phone":
        upright = _compose(rng, height, width)  # a portrait: the phone was held upright
        stored = _add_noise(rng, upright.transpose(_STORE_AS[shot.orientation]))
        stored.save(buffer, format="JPEG", quality=JPEG_QUALITY, exif=_exif(shot))
    elif shot.kind == "screenshot":
        _screenshot(rng, width, height).save(buffer, format="PNG")
    else:
        picture = _add_noise(rng, _compose(rng, width, height))
        picture.save(buffer, format="WEBP", quality=WEBP_QUALITY)
    return buffer.getvalue()


def _write(task: tuple[Shot, int, str]) -> tuple[Shot, int, float]:
    shot, seed, root = task
    started = time.perf_counter()
    data = render(shot, seed)
    path = os.path.join(root, shot.relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    stamp = calendar.timegm(shot.taken_at.timetuple())
    os.utime(path, (stamp, stamp))
    return shot, len(data), time.perf_counter() - started


# ---------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, metavar="DIR", help="folder to write the photos into")
    parser.add_argument("--n", type=int, required=True, help="how many photos")
    parser.add_argument("--seed", type=int, default=0, help="the corpus depends only on --n and this (default 0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    parser.add_argument("--procedural", action="store_true",
                        help="use procedural pictures even when the sample photos are installed")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty DIR (same-named files are replaced, others left alone)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.jobs < 1 or args.seed < 0:
        parser.error("--n and --jobs must be positive, --seed not negative")
    root = args.dir.expanduser().absolute()
    if root.exists() and any(root.iterdir()) and not args.force:
        parser.error(f"{root} is not empty (pass --force to write into it anyway)")
    root.mkdir(parents=True, exist_ok=True)

    found, source_line = ([], "procedural pictures (--procedural)") if args.procedural else sample_sources()
    procedural = not found
    print(f"sources: {source_line}", file=sys.stderr)
    shots = plan(args.n, args.seed)
    jobs = min(args.jobs, len(shots))
    print(f"writing {len(shots)} photos to {root} with {jobs} process(es)...", file=sys.stderr)

    started = time.perf_counter()
    sizes: dict[str, list[int]] = {kind: [] for kind in SHARES}
    tasks = [(shot, args.seed, str(root)) for shot in shots]
    report_every = max(1, len(shots) // 20)
    done = 0
    total_bytes = 0
    busy = 0.0  # seconds the processes spent making and writing photos, startup excluded
    if jobs == 1:
        _init_worker(args.seed, procedural)
        results = map(_write, tasks)
        pool = None
    else:
        pool = multiprocessing.Pool(jobs, initializer=_init_worker, initargs=(args.seed, procedural))
        results = pool.imap_unordered(_write, tasks, chunksize=1)
    try:
        for shot, size, seconds in results:
            busy += seconds
            sizes[shot.kind].append(size)
            done += 1
            total_bytes += size
            if done % report_every == 0 or done == len(shots):
                elapsed = time.perf_counter() - started
                print(f"  {done}/{len(shots)}  {done / elapsed:.2f} photos/s  mean {total_bytes / done / 1e6:.2f} MB",
                      file=sys.stderr)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    elapsed = time.perf_counter() - started

    manifest = {"generator": "bench/make_corpus.py", "n": len(shots), "seed": args.seed, "procedural": procedural,
                "sources": source_line, "bytes": total_bytes,
                "kinds": {kind: len(values) for kind, values in sizes.items()}}
    (root / ".corpus.json").write_text(json.dumps(manifest, indent=2) + "\n")  # hidden: clipsearch skips it

    print(f"wrote {done} photos, {total_bytes / 1e9:.2f} GB, in {elapsed:.1f} s: {done / elapsed:.2f} photos/s "
          f"with {jobs} process(es), startup included")
    print(f"  {busy / done:.2f} s per photo per process once started: about {jobs * done / busy:.2f} photos/s "
          f"with {jobs} process(es) on a long run (if the cores are free)")
    print(f"{'kind':<22}{'count':>6}  {'pixels':<11}{'mean MB':>8}{'min MB':>8}{'max MB':>8}")
    for kind, values in sizes.items():
        if values:
            w, h = SIZES[kind]
            print(f"{LABELS[kind]:<22}{len(values):>6}  {f'{w}x{h}':<11}{np.mean(values) / 1e6:>8.2f}"
                  f"{min(values) / 1e6:>8.2f}{max(values) / 1e6:>8.2f}")
    camera_like = sizes["camera"] + sizes["phone"]
    if camera_like:
        mean = np.mean(camera_like) / 1e6
        verdict = "in the 3-5 MB of real 12 MP camera JPEGs" if 3 <= mean <= 5 else "OUTSIDE the 3-5 MB target"
        print(f"12 MP JPEGs: mean {mean:.2f} MB, {verdict}")
    print(f"all files: mean {total_bytes / done / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
