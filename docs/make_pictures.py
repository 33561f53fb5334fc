"""Make the documentation's pictures with the project's own commands, from the test fixture and the test model.

    python docs/make_pictures.py                # writes docs/contact-sheet.jpg, docs/web.jpg and docs/locate.jpg
    python docs/make_pictures.py locate         # only the pictures named: contact-sheet, web, locate

The photo library is the one the tests use (tests/photos.py), written to a temporary folder and indexed
with the small trained model under tests/model/; the contact sheet is `clipsearch query --contact-sheet`
and the page is `clipsearch web`, photographed in Debian's Chromium through Playwright. The locate sheet is
`clipsearch locate --contact-sheet` over small objects on large canvases (tests/small_objects.py, the seed the tests
measure locate on), four photos of one kind of object.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO / "tests"))

from photos import write_photo_library  # noqa: E402
from small_objects import write_small_objects  # noqa: E402

MODEL = ["--model", str(REPO / "tests/model/clipsearch-test-tiny.json"),
         "--pretrained", str(REPO / "tests/model/clipsearch-test-tiny.pt")]


def clipsearch(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "clipsearch", *arguments], cwd=REPO, check=True)


def photograph_web(db: Path, target: Path) -> None:
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen([sys.executable, "-m", "clipsearch", "web", "--db", str(db)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        for line in server.stderr:
            found = re.search(r" at (http://\S+) \(Ctrl-C", line)
            if found:
                break
        else:
            raise SystemExit("clipsearch web did not start")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 760}, color_scheme="dark")
            page.goto(found.group(1) + "?q=a+red+circle&limit=24", wait_until="load")
            page.locator("#results a").nth(0).focus()
            page.screenshot(path=str(target), type="jpeg", quality=85)
            browser.close()
    finally:
        server.terminate()
        server.wait()


def locate_sheet(db: Path, work: Path, target: Path) -> None:
    """Boxes drawn by `clipsearch locate` on the four photos whose small object is the most common kind."""
    photos = write_small_objects(work / "small", 120)
    kinds = Counter(photo.text for photo in photos)
    text = kinds.most_common(1)[0][0]
    chosen = [str(photo.path) for photo in photos if photo.text == text][:4]
    clipsearch("locate", text, *chosen, "--db", str(db), "--top", "1", "--columns", "2", "--cell-size", "480",
               "--contact-sheet", str(target), "-f", "json")


def main() -> int:
    wanted = set(sys.argv[1:]) or {"contact-sheet", "web", "locate"}
    work = Path(tempfile.mkdtemp(prefix="clipsearch-docs-"))
    photos, db = work / "Photos", work / "db"
    write_photo_library(photos)
    clipsearch("index", str(photos), "--db", str(db), *MODEL, "--thumbnails", "--quiet")
    if "contact-sheet" in wanted:
        clipsearch("query", "a red circle", "--db", str(db), "-n", "10", "--columns", "5", "--cell-size", "200",
                   "--contact-sheet", str(DOCS / "contact-sheet.jpg"), "-f", "paths")
    if "web" in wanted:
        photograph_web(db, DOCS / "web.jpg")
    if "locate" in wanted:
        locate_sheet(db, work, DOCS / "locate.jpg")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
