"""`clipsearch web` in a real Chromium (Debian's package, driven by Playwright): what a user sees and does."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import IndexedLibrary, run_cli
from web_server import WebServer

pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("CLIPSEARCH_REQUIRE_BROWSER"):  # set by .ci/run, which installs it: missing is a failure
        raise RuntimeError("chromium is not installed: apt-get install -y chromium")
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture()
def page(browser, web: WebServer, tmp_path: Path) -> Iterator:
    """A fresh page that records every console error and uncaught exception: each test ends with none."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(web.url)  # as a user opens it: the token in the printed URL becomes a cookie
    yield opened
    opened.screenshot(path=str(tmp_path / "web.png"), full_page=True)  # for the record
    context.close()
    assert errors == [], errors


def shown_paths(page) -> list[str]:
    return [title.split(" · ")[0] for title in page.locator("#results a").evaluate_all("as => as.map(a => a.title)")]


def all_pictures_loaded(page) -> bool:
    return page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def search_for(page, text: str) -> None:
    page.fill("input[name=q]", text)
    with page.expect_navigation():
        page.press("input[name=q]", "Enter")


def test_typing_a_description_shows_the_photo_first(page, indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    search_for(page, "a red circle")
    assert "q=a+red+circle" in page.url
    top = indexed_library.photo(shown_paths(page)[0]).scene.main
    assert (top.colour, top.kind) == ("red", "circle")
    page.wait_for_load_state("load")
    assert all_pictures_loaded(page)
    assert page.locator("#results li").count() == 48
    assert (tmp_path / "web.png").parent.is_dir()


def test_a_result_opens_large_and_more_like_this_shows_look_alikes(page, web_db: Path) -> None:
    search_for(page, "a red circle")
    first = shown_paths(page)[0]
    with page.expect_navigation():
        page.locator("#results a").first.click()
    assert page.locator("dl.facts").inner_text().find(first) >= 0
    page.wait_for_load_state("load")
    assert all_pictures_loaded(page)  # the photo itself, shown large
    with page.expect_navigation():
        page.click("#more")
    expected = json.loads(run_cli("similar", first, "--db", web_db, "-n", "5", "-f", "json").stdout)
    assert shown_paths(page)[:5] == [result["path"] for result in expected]
    assert first not in shown_paths(page)


def test_the_folder_filter_narrows_the_results(page, indexed_library: IndexedLibrary) -> None:
    search_for(page, "a red circle")
    everywhere = shown_paths(page)
    summer = str(indexed_library.root / "2019" / "summer")
    page.click("details.filters summary")
    page.fill("input[name=folder]", summer)
    with page.expect_navigation():
        page.press("input[name=folder]", "Enter")
    narrowed = shown_paths(page)
    assert narrowed and len(narrowed) < len(everywhere)
    assert all(path.startswith(summer + "/") for path in narrowed)
    assert page.input_value("input[name=folder]") == summer  # the form keeps the filter for the next search


def test_the_keyboard_moves_through_results_and_back(page) -> None:
    page.keyboard.press("Escape")  # out of the search box, which has the focus when the page opens
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.name") == "q"
    page.keyboard.type("a blue square")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    results_url = page.url
    assert results_url.endswith("/?q=a+blue+square")  # empty filters stay out of the address
    page.focus("input[name=q]")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    second = shown_paths(page)[1]
    assert page.evaluate("document.activeElement.title").startswith(second)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/view/" in page.url and second in page.locator("dl.facts").inner_text()
    with page.expect_navigation():
        page.keyboard.press("Escape")
    assert page.url == results_url
    page.go_back()  # the back button returns to the photo, and forward again to the results
    assert "/view/" in page.url
    page.go_forward()
    assert page.input_value("input[name=q]") == "a blue square"


def test_picking_a_picture_searches_by_example(page, indexed_library: IndexedLibrary) -> None:
    photo = next(p for p in indexed_library.photos if p.format == "webp")
    with page.expect_navigation():
        page.set_input_files("form.upload input[type=file]", str(photo.path))
    assert "picture=" in page.url
    assert page.locator("h1").inner_text() == f"Photos like {photo.name}"
    assert shown_paths(page)[0] == str(photo.path)
    page.reload()  # the address names the picture: reload shows the same results
    assert shown_paths(page)[0] == str(photo.path)


def test_plain_text_search_works_without_javascript(browser, web: WebServer, indexed_library: IndexedLibrary,
                                                    ) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(web.url)
        search_for(page, "a red circle")
        top = indexed_library.photo(shown_paths(page)[0]).scene.main
        assert (top.colour, top.kind) == ("red", "circle")
    finally:
        context.close()
