"""What `index --regions` costs: images/s and disk per photo, against a plain `index`, side by side in one run.

    python bench/regions_cost.py CORPUS --pretrained /tmp/rclip-models/ViT-B-32-256-random.safetensors [--rounds 2]

Each round indexes CORPUS into two copies of a database that has been used once (bench/versus_rclip.py's
used_database: it holds the model, its query model and its converted tower), one with `--regions` and one
without, alternating, as whole `clipsearch index` commands. Reported: images/s (whole command, and after the first
committed batch), and the database folder's size per photo with and without regions. Prints the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_throughput import cpu_name
from versus_rclip import clipsearch_run, used_database


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--pretrained", required=True, help="a ViT-B-32-256 checkpoint (random weights will do)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clipsearch-regions-"))
    runs: dict[str, list[dict]] = {"plain": [], "--regions": []}
    try:
        template, _ = used_database(work, args.pretrained)
        for round_number in range(args.rounds):
            for name, extra in (("plain", []), ("--regions", ["--regions"])):
                db = work / f"{round_number}-{name}" / "db"
                shutil.copytree(template, db)
                before = _size(db)
                result = clipsearch_run(args.corpus.resolve(), db, extra)
                result["bytes_per_photo"] = (_size(db) - before) / result["indexed"]
                runs[name].append(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"index --regions against a plain index: {cpu_name()}, {os.cpu_count()} cores; {args.corpus} "
          f"({runs['plain'][0]['indexed']} photos), ViT-B-32-256; medians of {args.rounds} alternating rounds")
    print("| | images/s (whole command) | images/s after the first batch | disk per photo |\n|---|---|---|---|")
    for name, results in runs.items():
        rate = statistics.median(r["images_per_s"] for r in results)
        steady = statistics.median(r.get("steady_images_per_s", float("nan")) for r in results)
        size = statistics.median(r["bytes_per_photo"] for r in results)
        print(f"| {name} | {rate:.1f} | {steady:.1f} | {size / 1e3:.1f} kB |")
    print(f"engine: {runs['plain'][0]['engine']}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
