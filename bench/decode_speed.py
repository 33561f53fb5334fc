"""Decoding 12 MP JPEGs for the model, three ways, and hashing against reading: which is fastest on this CPU?

    python bench/decode_speed.py CORPUS [--limit 100] [--workers N] [--size 256] [--json PATH]

In one run, on the same files (read once first, so the page cache is warm), each in N threads (default: one per
core), it measures images/s of:

  read          the file's bytes (clipsearch.imaging.decode.read_file)
  + blake2b     read, then the content hash the catalogue keeps (clipsearch.filesystem.content_hash)
  + xxh3-128    read, then xxhash's 128-bit hash, for comparison
  pillow        clipsearch's decode: Pillow with draft() (libjpeg-turbo's DCT scaling to the smallest scale whose
                short side still covers the model's input), EXIF orientation, then prepare_pixels to the model size
  simplejpeg    simplejpeg.decode_jpeg at the same reduced scale (min_width/min_height), then the same resize; it
                applies no EXIF orientation, which clipsearch would have to add
  turbojpeg     PyTurboJPEG's scaled decode (when libturbojpeg is installed), the same resize, no EXIF either

It prints the CPU model and its flags: figures from other machines or days are not comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from index_throughput import cpu_name  # noqa: E402
from PIL import Image  # noqa: E402

from clipsearch.filesystem import content_hash  # noqa: E402
from clipsearch.imaging.decode import decode_image, read_file  # noqa: E402
from clipsearch.imaging.pixels import prepare_pixels  # noqa: E402


def _resize(image: Image.Image, size: int) -> np.ndarray:
    return prepare_pixels(image, size, "shortest", "bicubic")


def _ways(size: int) -> dict[str, Callable[[str], object]]:
    import xxhash

    ways: dict[str, Callable[[str], object]] = {
        "read": read_file,
        "read + blake2b (clipsearch)": lambda path: content_hash(read_file(path)),
        "read + xxh3-128": lambda path: xxhash.xxh3_128_hexdigest(read_file(path)),
        "read + pillow decode (clipsearch)": lambda path: _resize(decode_image(read_file(path),
                                                                               target_size=size).image, size),
    }
    try:
        import simplejpeg

        ways["read + simplejpeg decode"] = lambda path: _resize(Image.fromarray(simplejpeg.decode_jpeg(
            read_file(path), min_width=size, min_height=size, fastdct=False, fastupsample=False)), size)
    except ImportError:
        print("simplejpeg is not installed: pip install simplejpeg", file=sys.stderr)
    try:
        from turbojpeg import TurboJPEG

        turbo = TurboJPEG()

        def turbo_decode(path: str) -> np.ndarray:
            data = read_file(path)
            width, height, _, _ = turbo.decode_header(data)
            scale = max((f for f in turbo.scaling_factors if min(width, height) * f[0] / f[1] >= size),
                        key=lambda f: -f[0] / f[1], default=(1, 1))
            pixels = turbo.decode(data, scaling_factor=scale, pixel_format=0)  # TJPF_RGB
            return _resize(Image.fromarray(pixels), size)

        ways["read + turbojpeg decode"] = turbo_decode
    except (ImportError, RuntimeError, OSError) as error:
        print(f"PyTurboJPEG unavailable: {' '.join(str(error).split())[:100]}", file=sys.stderr)
    return ways


def _rate(way: Callable[[str], object], paths: list[str], workers: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(way, paths))
        best = min(best, time.perf_counter() - began)
    return len(paths) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--limit", type=int, default=100, help="JPEGs to use (default 100)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--size", type=int, default=256, help="the model's input size (default 256)")
    parser.add_argument("--rounds", type=int, default=2, help="best of R passes (default 2)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    paths = sorted(str(p) for p in args.corpus.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:args.limit]
    if not paths:
        parser.error(f"no JPEG under {args.corpus}")
    for path in paths:
        read_file(path)  # a warm page cache for every way
    megapixels = np.median([np.prod(Image.open(path).size) / 1e6 for path in paths])
    print(f"decode speed: {cpu_name()}, {os.cpu_count()} cores; {len(paths)} JPEGs (median {megapixels:.1f} MP), "
          f"{args.workers} threads, to {args.size} px, best of {args.rounds}")
    results = {}
    for name, way in _ways(args.size).items():
        results[name] = _rate(way, paths, args.workers, args.rounds)
        print(f"  {name:<36}{results[name]:>8.1f} images/s", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "files": len(paths), "workers": args.workers,
                                         "megapixels": float(megapixels), "images_per_s": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
