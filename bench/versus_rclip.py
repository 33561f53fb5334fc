"""clipsearch against rclip, side by side in one run: indexing the same photos with the same model.

    python ../shared/peer-rclip/make_models.py --out /tmp/rclip-models          # once: random ViT-B-32-256
    python bench/versus_rclip.py CORPUS --pretrained /tmp/rclip-models/ViT-B-32-256-random.safetensors \\
        --rclip-models /tmp/rclip-models/rclip-datadir [--rounds 2] [--json PATH]

Both tools get the same random-weight ViT-B-32-256 (rclip as its ONNX export, clipsearch as the open_clip
checkpoint) and the same corpus, with a warm page cache. Each round runs, one after the other:

  rclip                    ../shared/peer-rclip/run_rclip.sh: a new rclip process indexing the corpus from an empty
                           database, model load included
  clipsearch (engine)      a new `clipsearch index CORPUS` process into a copy of a database that has been used
                           once (it indexed one other photo, so it holds the model's identity, its query model and,
                           for OpenVINO, the checked converted tower), for --engine openvino and --engine torch

After each, a new process answers a text query and an image query (rclip's: `--no-indexing`; clipsearch's: no
server). For clipsearch, the catalogue is polled while it runs, which gives the start-up (from the process's start
to the first committed batch, less that batch's own time at the steady rate) and the rate excluding it. The first
index of a fresh database, which pays the conversion once, is timed too. Peak RSS comes from /usr/bin/time.
The CPU model and flags are printed: compare figures only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from index_throughput import cpu_name  # noqa: E402

PEER = REPO.parent / "shared" / "peer-rclip" / "run_rclip.sh"
MODEL = "ViT-B-32-256"
TEXT_QUERY = "a dog playing on the beach"  # run_rclip.sh's


def _count(db: Path) -> int:
    try:
        connection = sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True, timeout=1)
        try:
            return connection.execute("SELECT count(*) FROM files").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error:
        return 0


def clipsearch_run(corpus: Path, db: Path, extra: list[str]) -> dict:
    """One `clipsearch index` process, timed whole, with the catalogue polled for its first and last commits."""
    before = _count(db)
    command = ["/usr/bin/time", "-f", "%e %M", "-o", str(db.parent / "time.txt"), sys.executable, "-m",
               "clipsearch", "index", str(corpus), "--db", str(db), *extra]
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    commits: list[tuple[float, int]] = []
    while process.poll() is None:
        count = _count(db)
        if count > (commits[-1][1] if commits else before):
            commits.append((time.perf_counter() - began, count))
        time.sleep(0.05)
    wall = time.perf_counter() - began
    stderr = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"clipsearch index failed ({process.returncode}): {stderr[-2000:]}")
    indexed = int(re.search(r"indexed (\d+)", stderr).group(1))
    rss_mb = float((db.parent / "time.txt").read_text().split()[-1]) / 1024
    result = {"indexed": indexed, "wall_s": wall, "images_per_s": indexed / wall, "peak_rss_mb": rss_mb,
              "engine": next((line for line in stderr.splitlines() if line.startswith("embedding with")), "torch")}
    if len(commits) >= 2:
        (first_at, first_count), (last_at, last_count) = commits[0], commits[-1]
        steady = (last_count - first_count) / (last_at - first_at)
        result["steady_images_per_s"] = steady
        result["startup_s"] = first_at - (first_count - before) / steady
    return result


def rclip_run(corpus: Path, models: Path, venv: Path) -> dict:
    done = subprocess.run(["bash", str(PEER), str(corpus), "--repeat", "1"], capture_output=True, text=True,
                          env={**os.environ, "MODEL_DIR": str(models), "RCLIP_VENV": str(venv)})
    if done.returncode != 0:
        raise SystemExit(f"run_rclip.sh failed: {done.stderr[-2000:]}")
    figures = dict(line.split("=", 1) for line in done.stdout.splitlines() if re.match(r"^\w+=", line))
    return {"indexed": int(figures["images_indexed"]), "wall_s": float(figures["index_wall_s"]),
            "images_per_s": float(figures["images_per_s"]), "peak_rss_mb": float(figures["index_peak_rss_mb"]),
            "text_query_s": float(figures["text_query_wall_s"]), "image_query_s": float(figures["image_query_wall_s"])}


def query_runs(corpus: Path, db: Path) -> dict:
    """A new `clipsearch query` and `similar` process each (no server), as run_rclip.sh times rclip's: same text,
    same image (the first JPEG of the corpus in byte order)."""
    image = sorted(str(p) for p in corpus.rglob("*") if p.suffix in (".jpg", ".JPG"))[0]
    env = {**os.environ, "CLIPSEARCH_NO_SERVER": "1"}
    timings = {}
    for name, command in (("text_query_s", ["query", TEXT_QUERY]), ("image_query_s", ["similar", image])):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "clipsearch", *command, "--db", str(db), "-n", "10"], cwd=REPO,
                       env=env, capture_output=True, check=True)
        timings[name] = time.perf_counter() - began
    return timings


def used_database(work: Path, pretrained: str) -> tuple[Path, dict]:
    """A database that has indexed one photo (not in the corpus), and how long that first index took."""
    from PIL import Image

    seed = work / "seed"
    seed.mkdir()
    Image.new("RGB", (640, 480), (120, 160, 200)).save(seed / "seed.jpg")
    db = work / "used" / "db"
    db.parent.mkdir()
    first = clipsearch_run(seed, db, ["--model", MODEL, "--pretrained", pretrained, "--engine", "auto"])
    return db, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--pretrained", required=True, help="the random ViT-B-32-256 checkpoint make_models.py wrote")
    parser.add_argument("--rclip-models", type=Path, default=Path("/tmp/rclip-models/rclip-datadir"))
    parser.add_argument("--rclip-venv", type=Path, default=Path("/tmp/venv-rclip"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    work = Path(tempfile.mkdtemp(prefix="clipsearch-versus-"))
    runs: dict[str, list[dict]] = {"rclip": [], "clipsearch openvino": [], "clipsearch torch": []}
    try:
        template, first = used_database(work, args.pretrained)
        for round_number in range(args.rounds):
            runs["rclip"].append(rclip_run(corpus, args.rclip_models, args.rclip_venv))
            for engine in ("openvino", "torch"):
                db = work / f"{engine}-{round_number}" / "db"
                shutil.copytree(template, db)
                result = clipsearch_run(corpus, db, ["--engine", engine])
                if engine == "openvino":
                    result |= query_runs(corpus, db)
                runs[f"clipsearch {engine}"].append(result)
            print(f"round {round_number + 1}: " + ", ".join(f"{name} {r[-1]['images_per_s']:.1f}/s"
                                                              for name, r in runs.items()), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(corpus, first, runs)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "corpus": str(corpus), "first_index_of_a_database": first,
                                         "runs": runs}, indent=2))
    return 0


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def report(corpus: Path, first: dict, runs: dict[str, list[dict]]) -> None:
    files = runs["rclip"][0]["indexed"]
    print(f"clipsearch vs rclip: {cpu_name()}, {os.cpu_count()} cores; {corpus} ({files} photos); {MODEL} random "
          f"weights; medians of {len(runs['rclip'])} alternating rounds")
    print("| | whole command | images/s | x rclip | start-up before the first batch | images/s after it | peak RSS "
          "| text query | image query |")
    print("|---|---|---|---|---|---|---|---|---|")
    rclip = statistics.median(r["images_per_s"] for r in runs["rclip"])
    for name, results in runs.items():
        median = {key: statistics.median(r[key] for r in results) if all(key in r for r in results) else None
                  for key in ("wall_s", "images_per_s", "startup_s", "steady_images_per_s", "peak_rss_mb",
                              "text_query_s", "image_query_s")}
        startup = f"{median['startup_s']:.1f} s" if median["startup_s"] is not None else "n/a"
        steady = f"{median['steady_images_per_s']:.1f}" if median["steady_images_per_s"] is not None else "n/a"
        print(f"| {name} | {median['wall_s']:.1f} s | {median['images_per_s']:.1f} | "
              f"{median['images_per_s'] / rclip:.2f} | {startup} | {steady} | {median['peak_rss_mb']:.0f} MB | "
              f"{_seconds(median['text_query_s'])} | {_seconds(median['image_query_s'])} |")
    for name in ("clipsearch openvino", "clipsearch torch"):
        print(f"{name}: {runs[name][0]['engine']}")
    print(f"the first index of a new database (one photo; the model's conversion and query model once): "
          f"{first['wall_s']:.1f} s, {first['engine']}")


if __name__ == "__main__":
    sys.exit(main())
