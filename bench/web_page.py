"""Thumbnails, contact sheets and `clipsearch web`, against the targets of issue 14.

    python bench/web_page.py --corpus /tmp/corpus200 --pretrained /tmp/vitb32-256-random.pt \\
        --catalog /tmp/cat100k --json bench/results/web.json

Four measurements, each printed with its target:

1. `index --thumbnails`: images/s of `clipsearch index` over CORPUS with and without making thumbnails, each
   into a fresh database, run alternately (--rounds) so that background load falls on both alike.
2. A grid of 50 results in a real Chromium (Debian's, through Playwright): from the request until the last
   thumbnail has loaded (the page's load event; no image is lazy), with the thumbnail cache emptied first
   ("cold": each 12 MP JPEG decoded at a reduced DCT scale) and then full ("cached"), each in a new browser
   context, so the browser's own cache never helps. The database is CORPUS indexed by step 1.
3. Web text search over --catalog (a synthetic catalogue, bench/synthetic_catalog.py, 100,000 photos): the
   server's own time for a results page of 50, from its Server-Timing header, over --queries different
   queries, the model resident; and the time a client waits for the page.
4. A contact sheet of 50 results, thumbnails cached: `write_contact_sheets` in-process, and the whole
   `clipsearch query ... --contact-sheet` command for reference.

The model is ViT-B-32-256 with the random weights of --pretrained: the time is the real model's, the
rankings are meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from index_throughput import cpu_name  # noqa: E402

QUERIES = ["a dog on a beach", "sunset over the sea", "a red car", "birthday cake with candles", "snowy mountains",
           "a cat sleeping on a sofa", "people at a wedding", "a plate of pasta", "city skyline at night",
           "a child on a bicycle", "autumn leaves", "a boat in a harbour", "a screenshot of a chat", "flowers",
           "a receipt", "a waterfall in a forest", "a crowd at a concert", "an old church", "a bowl of fruit",
           "a horse in a field"]


def clipsearch(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipsearch", *arguments], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "CLIPSEARCH_NO_SERVER": "1", **(env or {})}, check=True)


def index_rate(corpus: Path, db: Path, model: list[str], thumbnails: bool) -> float:
    shutil.rmtree(db, ignore_errors=True)
    began = time.perf_counter()
    clipsearch("index", str(corpus), "--db", str(db), *model, "--quiet", *(["--thumbnails"] if thumbnails else []))
    files = sum(1 for p in corpus.rglob("*") if p.is_file())
    return files / (time.perf_counter() - began)


def start_web(db: Path) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "clipsearch", "web", "--db", str(db)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    assert server.stderr is not None
    for line in server.stderr:
        found = re.search(r" at (http://\S+) \(Ctrl-C", line)
        if found:
            return server, found.group(1).rstrip("/")
    raise SystemExit(f"clipsearch web exited with {server.wait()}")


def grid_times(browser, base: str, query: str, rounds: int) -> list[float]:
    """Milliseconds from navigation start to the load event (every thumbnail loaded), one fresh context each."""
    times = []
    for _ in range(rounds):
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.goto(f"{base}/?q={query}&limit=50", wait_until="load")
        loaded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        shown = page.locator("#results img").count()
        assert shown == 50 and loaded >= 50, (shown, loaded)
        times.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        context.close()
    return times


def measure_grid(db: Path, rounds: int) -> dict:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    thumbnails = db / "thumbnails"
    server, base = start_web(db)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            grid_times(browser, base, "warm+up", 1)  # the page's own assets and the model's first query
            cold = []
            for n in range(rounds):
                shutil.rmtree(thumbnails, ignore_errors=True)
                cold += grid_times(browser, base, f"photo+{n}", 1)
            cached = grid_times(browser, base, f"photo+{rounds - 1}", rounds)
            browser.close()
    finally:
        server.terminate()
        server.wait()
    return {"cold_ms": cold, "cached_ms": cached, "cold_median_ms": statistics.median(cold),
            "cached_median_ms": statistics.median(cached)}


def measure_search(catalog: Path, count: int) -> dict:
    server, base = start_web(catalog)
    server_ms, client_ms = [], []
    try:
        for query in (QUERIES * (count // len(QUERIES) + 1))[:count]:
            began = time.perf_counter()
            with urllib.request.urlopen(f"{base}/?q={urllib.parse.quote_plus(query)}&limit=50") as response:
                response.read()
                timing = response.headers["server-timing"]
            client_ms.append((time.perf_counter() - began) * 1e3)
            server_ms.append(sum(float(d) for d in re.findall(r"dur=([\d.]+)", timing)))
    finally:
        server.terminate()
        server.wait()
    quantile = statistics.quantiles
    return {"server_p50_ms": statistics.median(server_ms), "server_p95_ms": quantile(server_ms, n=20)[18],
            "client_p50_ms": statistics.median(client_ms), "client_p95_ms": quantile(client_ms, n=20)[18],
            "requests": count}


def measure_sheet(db: Path, rounds: int) -> dict:
    from clipsearch.config import DataDir
    from clipsearch.imaging.thumbnails import ThumbnailCache
    from clipsearch.output.sheet import write_contact_sheets
    from clipsearch.search.request import QueryKind, QueryOptions
    from clipsearch.search.searcher import Searcher

    cache = ThumbnailCache(DataDir(db).thumbnails)
    searcher = Searcher(DataDir(db))
    results = searcher.search(QueryKind.text, ["a photo"], QueryOptions(limit=50)).results
    searcher.close()

    def thumbnail(path: str) -> bytes:
        info = os.stat(path)
        return cache.thumbnail(path, info.st_size, info.st_mtime_ns)

    target = Path(tempfile.mkdtemp()) / "sheet.jpg"
    write_contact_sheets(results, ["a photo"], False, target, thumbnail)  # fills the cache
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        write_contact_sheets(results, ["a photo"], False, target, thumbnail)
        times.append((time.perf_counter() - began) * 1e3)
    began = time.perf_counter()
    clipsearch("query", "a photo", "--db", str(db), "-n", "50", "--contact-sheet", str(target), "-f", "json")
    command_ms = (time.perf_counter() - began) * 1e3
    return {"sheet_median_ms": statistics.median(times), "sheet_ms": times, "whole_command_ms": command_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="photos (bench/make_corpus.py)")
    parser.add_argument("--pretrained", required=True, help="ViT-B-32-256 checkpoint (random weights will do)")
    parser.add_argument("--catalog", type=Path, required=True, help="a 100k synthetic catalogue")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "web-bench")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(f"cpu: {cpu_name()}")
    model = ["--model", "ViT-B-32-256", "--pretrained", args.pretrained]
    figures: dict = {"cpu": cpu_name(), "corpus": str(args.corpus)}
    plain, with_thumbnails = [], []
    for _ in range(2):
        plain.append(index_rate(args.corpus, args.work / "plain", model, thumbnails=False))
        with_thumbnails.append(index_rate(args.corpus, args.work / "thumbs", model, thumbnails=True))
    figures["index"] = {"images_per_s": plain, "with_thumbnails_images_per_s": with_thumbnails,
                        "ratio": statistics.median(with_thumbnails) / statistics.median(plain)}
    print(f"index: {statistics.median(plain):.2f} images/s, with --thumbnails {statistics.median(with_thumbnails):.2f}"
          f" (x{figures['index']['ratio']:.3f})")
    figures["grid"] = measure_grid(args.work / "thumbs", args.rounds)
    print(f"grid of 50 in Chromium: cold {figures['grid']['cold_median_ms']:.0f} ms (target <= 3000), cached "
          f"{figures['grid']['cached_median_ms']:.0f} ms (target <= 300)")
    figures["search"] = measure_search(args.catalog, args.queries)
    print(f"web text search over {args.catalog}: server p50 {figures['search']['server_p50_ms']:.1f} ms, p95 "
          f"{figures['search']['server_p95_ms']:.1f} ms (target p50 <= 100); client p50 "
          f"{figures['search']['client_p50_ms']:.1f} ms")
    figures["sheet"] = measure_sheet(args.work / "thumbs", args.rounds)
    print(f"contact sheet of 50, cached: {figures['sheet']['sheet_median_ms']:.0f} ms (target <= 1000); the whole "
          f"command {figures['sheet']['whole_command_ms']:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
