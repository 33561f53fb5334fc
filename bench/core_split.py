"""How to split the cores between decoding and OpenVINO: `clipsearch index` at each OpenVINO thread count and
number of decode workers, side by side in one run.

    python bench/core_split.py CORPUS --pretrained /tmp/rclip-models/ViT-B-32-256-random.safetensors

Each configuration indexes CORPUS as a whole `clipsearch index` command into a copy of a database that has been
used once (bench/versus_rclip.py's used_database), with CLIPSEARCH_OPENVINO_THREADS=T (0: OpenVINO's own choice,
the default) and --workers W; configurations alternate over --rounds. Prints images/s (whole command, and after
the first committed batch) and the CPU it ran on.
"""

from __future__ import annotations

import argparse
import itertools
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--pretrained", required=True, help="a ViT-B-32-256 checkpoint (random weights will do)")
    parser.add_argument("--threads", default="0,1,2", help="OpenVINO inference threads to try (0: its default)")
    parser.add_argument("--workers", default="1,2,3", help="decode workers to try")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    configs = list(itertools.product([int(t) for t in args.threads.split(",")],
                                     [int(w) for w in args.workers.split(",")]))
    work = Path(tempfile.mkdtemp(prefix="clipsearch-split-"))
    runs: dict[str, list[dict]] = {f"{t} {w}": [] for t, w in configs}
    saved = os.environ.get("CLIPSEARCH_OPENVINO_THREADS")
    try:
        template, _ = used_database(work, args.pretrained)
        for round_number in range(args.rounds):
            for threads, workers in configs:
                os.environ["CLIPSEARCH_OPENVINO_THREADS"] = str(threads)
                db = work / f"{round_number}-{threads}-{workers}" / "db"
                shutil.copytree(template, db)
                runs[f"{threads} {workers}"].append(clipsearch_run(args.corpus.resolve(), db,
                                                                   ["--engine", "openvino", "--workers", str(workers)]))
    finally:
        os.environ.pop("CLIPSEARCH_OPENVINO_THREADS", None)
        if saved is not None:
            os.environ["CLIPSEARCH_OPENVINO_THREADS"] = saved
        shutil.rmtree(work, ignore_errors=True)
    print(f"core split: {cpu_name()}, {os.cpu_count()} cores; {args.corpus}; ViT-B-32-256 on OpenVINO; "
          f"medians of {args.rounds} round(s)")
    print("| OpenVINO threads | decode workers | images/s (whole command) | images/s after the first batch |")
    print("|---|---|---|---|")
    for key, results in runs.items():
        threads, workers = key.split()
        rate = statistics.median(r["images_per_s"] for r in results)
        steady = statistics.median(r.get("steady_images_per_s", float("nan")) for r in results)
        print(f"| {threads if threads != '0' else 'default'} | {workers} | {rate:.1f} | {steady:.1f} |")
    print(f"engine: {next(iter(runs.values()))[0]['engine']}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
