"""Tagging and duplicate finding over a large library: the matrix work on stored vectors, timed.

    python bench/synthetic_catalog.py --n 100000 /tmp/cat100k --model ViT-B-32-256 \\
        --pretrained /tmp/vitb32-256-random.pt --make-checkpoint
    python bench/library_insight.py --db /tmp/cat100k --labels 1000

On a copy of DB (the original is left as it is), in one run:

  label vectors   --labels made-up labels x the default 7 prompt templates, embedded by the database's
                  query model (numpy, no torch), as `clipsearch tag --vocabulary` does once per vocabulary;
  tagging         every photo's probabilities over the labels (in groups of 100, as a vocabulary's groups)
                  and its tags, written to the catalogue in one transaction: clipsearch.insight.tagging.write_tags;
  duplicates      `clipsearch duplicates --similar -f jsonl` in a fresh process: HNSW neighbours of every
                  photo, grouping, output; wall time and peak RSS, beside the size of the HNSW file it loads.

Targets (issue "Understand the library"): tagging 100,000 photos against 1,000 labels in <= 15 s;
duplicates over 100,000 photos in <= 30 s with memory flat beyond the index itself.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
from index_throughput import cpu_name  # noqa: E402

from clipsearch.config import DataDir  # noqa: E402
from clipsearch.insight.tagging import write_tags  # noqa: E402
from clipsearch.insight.vocabulary import Group, Vocabulary  # noqa: E402
from clipsearch.models.zero_shot import DEFAULT_TEMPLATES, Tagger, TagRule, label_vectors  # noqa: E402
from clipsearch.search.searcher import Searcher  # noqa: E402


def _vocabulary(count: int) -> Vocabulary:
    words = [f"thing number {n}" for n in range(count)]
    return Vocabulary(tuple(Group(f"group {g}", DEFAULT_TEMPLATES, tuple(words[g:g + 100]))
                            for g in range(0, count, 100)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--labels", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="insight-"))
    db = work / "db"
    shutil.copytree(args.db, db)
    print(f"cpu: {cpu_name()}")
    searcher = Searcher(DataDir(db))
    photos = searcher.catalog.files.count()
    vocabulary = _vocabulary(args.labels)
    began = time.perf_counter()
    vectors = label_vectors(searcher.embedder.texts, vocabulary.labels, vocabulary.label_templates)
    embedding_s = time.perf_counter() - began
    tagger = Tagger(vocabulary.labels, vocabulary.label_groups, vectors, TagRule(), searcher.embedder.logit_scale)
    began = time.perf_counter()
    report = write_tags(searcher.catalog, tagger, vocabulary, searcher.identity.to_dict())
    tagging_s = time.perf_counter() - began
    searcher.close()
    print(f"library: {photos:,} photos, {args.labels:,} labels x {len(DEFAULT_TEMPLATES)} templates "
          f"({np.asarray(vectors).shape[1]} dimensions)")
    print(f"label vectors (query model, once per vocabulary): {embedding_s:.1f} s")
    print(f"tagging every photo and writing the tags: {tagging_s:.1f} s (target 15 s at 100k x 1000): "
          f"{report.tags:,} tags on {report.tagged:,} photos")
    command = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "clipsearch", "duplicates", "--similar",
               "--db", str(db), "-f", "jsonl"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall, peak_kb = done.stderr.strip().splitlines()[-1].split()
    index_mb = (db / "vectors.hnsw").stat().st_size / 1e6
    groups = len(done.stdout.splitlines())
    print(f"duplicates --similar over {photos:,} photos: {float(wall):.1f} s (target 30 s), peak RSS "
          f"{int(peak_kb) / 1024:.0f} MB with a {index_mb:.0f} MB index; {groups} groups")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
