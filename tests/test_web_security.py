"""Issue 25, the adversarial review of `clipsearch web`: each finding, over real HTTP to the real server (and in
Chromium where a browser is involved), from another user where it concerns other users."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import IndexedLibrary, TinyModel, model_args, run_cli
from PIL import Image
from web_server import REPO, WebServer, multipart, running_web

from clipsearch.filesystem import content_hash

pytestmark = pytest.mark.slow

NOBODY = 65534
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options")


def as_nobody(code: str) -> subprocess.CompletedProcess:
    """Python code run as another user of this machine (uid and gid 65534), as root can."""
    def drop() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    # The system's Python: the tests' own may sit where that user cannot go (only the standard library is used).
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), None)
    if python is None:
        pytest.skip("no system python3 for another user to run")
    return subprocess.run([python, "-I", "-c", code], preexec_fn=drop, cwd="/", capture_output=True, text=True,
                          timeout=60)


# --- 1. loopback is shared by every user of the machine ----------------------------------------------------------
@pytest.mark.skipif(os.getuid() != 0, reason="dropping to another user needs root")
def test_another_user_of_the_machine_cannot_read_photos_or_paths(web: WebServer,
                                                                indexed_library: IndexedLibrary) -> None:
    assert web.get("/photo/1")[0] == 200  # the owner, with the cookie the printed URL gave
    code = f"""
import http.client
for path in ("/photo/1", "/thumb/1", "/view/1", "/?q=a+red+circle", "/?like=1"):
    connection = http.client.HTTPConnection("127.0.0.1", {web.port}, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    print(path, response.status, response.read().decode("latin-1").replace("\\n", " "))
"""
    ran = as_nobody(code)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert len(lines) == 5 and all(line.split()[1] == "403" for line in lines), ran.stdout
    assert str(indexed_library.root) not in ran.stdout


def test_a_request_without_the_token_is_refused_on_loopback(web: WebServer) -> None:
    assert urlsplit(web.url).hostname == "127.0.0.1" and "token=" in web.url
    status, headers, body = web.get("/", authenticated=False)
    assert status == 403 and b"token" in body and "content-security-policy" in headers
    status, headers, _ = web.get(f"/?token={web.token}", authenticated=False)
    assert status == 303 and headers["location"] == "/"
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]


# --- 2. a catalogued path is served only while it holds the catalogued photo -------------------------------------
@pytest.fixture(scope="module")
def own_library(test_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small library of its own (the tests change its files), indexed: (root, db)."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "photos"
    (root / "trip").mkdir(parents=True)
    for number, colour in enumerate(("red", "green", "blue", "yellow", "white")):
        Image.new("RGB", (64, 48), colour).save(root / "trip" / f"DSC_481{number}.JPG", "JPEG")
    secret = base / "private"
    secret.mkdir()
    Image.new("RGB", (64, 48), "black").save(secret / "secret.png")
    (secret / "DSC_4813.JPG").write_bytes((root / "trip" / "DSC_4813.JPG").read_bytes())
    db = base / "db"
    indexed = run_cli("index", root, "--db", db, *model_args(test_model))
    assert indexed.exit_code == 0, indexed.stderr
    return root, db


def ids_by_name(db: Path) -> dict[str, int]:
    import sqlite3

    connection = sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True)
    try:
        return {os.path.basename(os.fsdecode(path) if isinstance(path, bytes) else path): row_id
                for row_id, path in connection.execute("SELECT id, path FROM files")}
    finally:
        connection.close()


def test_a_link_or_another_file_put_in_a_photos_place_is_not_served(own_library: tuple[Path, Path]) -> None:
    root, db = own_library
    ids = ids_by_name(db)
    secret = root.parent / "private" / "secret.png"
    with running_web(db) as web:
        for name in ("DSC_4811.JPG", "DSC_4812.JPG", "DSC_4810.JPG"):
            assert web.get(f"/photo/{ids[name]}")[0] == 200
        # A link to a file outside the library, put where a photo was after it was indexed.
        os.replace(root / "trip" / "DSC_4811.JPG", root.parent / "moved.jpg")
        os.symlink("/etc/passwd", root / "trip" / "DSC_4811.JPG")
        status, headers, body = web.get(f"/photo/{ids['DSC_4811.JPG']}")
        assert status == 404 and b"root:" not in body and "content-security-policy" in headers
        os.replace(root / "trip" / "DSC_4811.JPG", root.parent / "link")
        os.symlink(secret, root / "trip" / "DSC_4811.JPG")
        status, _, body = web.get(f"/photo/{ids['DSC_4811.JPG']}")
        assert status == 404 and body != secret.read_bytes()
        _, headers, _ = web.get(f"/thumb/{ids['DSC_4811.JPG']}")
        assert headers["content-type"].startswith("image/svg+xml")  # the placeholder, not the secret's thumbnail
        view = web.get(f"/view/{ids['DSC_4811.JPG']}")[2].decode()
        assert "File size" not in view  # nothing said about what the link leads to
        # The same name in a folder that is now a link to another folder.
        os.replace(root / "trip", root.parent / "trip-moved")
        os.symlink(root.parent / "private", root / "trip")
        try:
            status, _, body = web.get(f"/photo/{ids['DSC_4813.JPG']}")
            assert status == 404 and b"symbolic link" in body
            assert web.get(f"/thumb/{ids['DSC_4813.JPG']}")[1]["content-type"].startswith("image/svg+xml")
        finally:
            os.unlink(root / "trip")
            os.replace(root.parent / "trip-moved", root / "trip")
        # A regular file changed since it was indexed: 409; the same size and time but no picture: not sent.
        photo = root / "trip" / "DSC_4812.JPG"
        photo.write_bytes(photo.read_bytes() + b"more")
        assert web.get(f"/photo/{ids['DSC_4812.JPG']}")[0] == 409
        photo = root / "trip" / "DSC_4810.JPG"
        before = photo.stat()
        photo.write_bytes(b"#!/bin/sh\n" + b"x" * (before.st_size - 10))
        os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))
        status, headers, body = web.get(f"/photo/{ids['DSC_4810.JPG']}")
        assert status == 404 and not body.startswith(b"#!/bin/sh")


def test_a_link_planted_in_the_thumbnail_cache_is_not_followed(tmp_path: Path) -> None:
    from clipsearch.imaging.thumbnails import NotCataloguedError, ThumbnailCache

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), "red").save(photo)
    info = photo.stat()
    cache = ThumbnailCache(tmp_path / "thumbnails")
    made = cache.thumbnail(str(photo), info.st_size, info.st_mtime_ns)
    key = cache.key(str(photo), info.st_size, info.st_mtime_ns)
    entry = tmp_path / "thumbnails" / key[:2] / f"{key}.jpg"
    assert entry.is_file() and cache.get(key) == made
    other = tmp_path / "other.jpg"
    Image.new("RGB", (64, 48), "blue").save(other)
    entry.unlink()
    entry.symlink_to(other)
    assert cache.get(key) is None  # a link is no entry
    assert cache.thumbnail(str(photo), info.st_size, info.st_mtime_ns) != other.read_bytes()
    # A subfolder of the cache replaced by a link.
    folder = entry.parent
    shutil.rmtree(folder)
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(other, tmp_path / "elsewhere" / entry.name)
    folder.symlink_to(tmp_path / "elsewhere")
    assert cache.get(key) is None
    # The source photo is read only while it is the file of that size and time, with no link on the way.
    link = tmp_path / "link.jpg"
    link.symlink_to(other)
    with pytest.raises(NotCataloguedError):
        cache.thumbnail(str(link), other.stat().st_size, other.stat().st_mtime_ns)
    with pytest.raises(NotCataloguedError):
        cache.thumbnail(str(other), other.stat().st_size + 1, other.stat().st_mtime_ns)


def test_link_to_leaves_out_a_result_that_is_now_a_link(tmp_path: Path) -> None:
    from clipsearch.output.links import link_results
    from clipsearch.search.results import Result

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (8, 8)).save(photos / "a.jpg")
    os.symlink("/etc/passwd", photos / "b.jpg")
    results = [Result(1, 0.9, str(photos / "a.jpg"), 8, 8, None), Result(2, 0.8, str(photos / "b.jpg"), 8, 8, None)]
    skipped: list[str] = []
    assert link_results(results, tmp_path / "links", False, skipped.append) == 1
    assert sorted(os.listdir(tmp_path / "links")) == ["01-a.jpg"]
    assert skipped == [str(photos / "b.jpg")]


# --- 4. cross-site requests ----------------------------------------------------------------------------------------
def upload(web: WebServer, data: bytes, headers: dict[str, str], csrf: str | None) -> int:
    body, content_type = multipart({"csrf": csrf} if csrf is not None else {}, "x.jpg", data)
    return web.request("POST", "/like", headers={"Content-Type": content_type, **headers}, body=body)[0]


def held(web: WebServer, data: bytes) -> bool:
    return web.get(f"/picture/{content_hash(data)[:20]}")[0] == 200


@pytest.mark.parametrize("headers, with_csrf", [
    ({"Origin": "http://evil.com", "Sec-Fetch-Site": "cross-site"}, True),
    ({"Origin": "http://evil.com"}, True),
    ({"Sec-Fetch-Site": "cross-site"}, True),
    ({"Sec-Fetch-Site": "same-site"}, True),
    ({"Origin": "http://127.0.0.1:1"}, True),  # same site, another origin: another local server's page
    ({"Origin": "null"}, True),
    ({}, False),  # no Origin (an old browser): the form's CSRF token is missing
])
def test_a_cross_site_upload_is_refused_and_not_acted_on(web: WebServer, indexed_library: IndexedLibrary,
                                                         headers: dict[str, str], with_csrf: bool) -> None:
    data = indexed_library.photos[7].path.read_bytes() + repr(headers).encode()  # a picture of its own
    assert upload(web, data, headers, web.csrf() if with_csrf else None) == 403
    assert not held(web, data)
    assert upload(web, data, {}, "0" * 64) == 403  # a forged token
    assert not held(web, data)


def test_an_upload_from_the_page_itself_is_accepted(web: WebServer, indexed_library: IndexedLibrary) -> None:
    data = indexed_library.photos[8].path.read_bytes()
    origin = {"Origin": f"http://127.0.0.1:{web.port}", "Sec-Fetch-Site": "same-origin"}
    assert upload(web, data, origin, web.csrf()) == 303
    assert held(web, data)


@pytest.fixture()
def other_site(indexed_library: IndexedLibrary, web: WebServer) -> Iterator[str]:
    """A page on another port of 127.0.0.1 (the same site, another origin) that posts a picture to /like."""
    picture = indexed_library.photos[9].path.read_bytes()
    page = f"""<!doctype html><title>waiting</title><script>
fetch("/picture.jpg").then((r) => r.blob()).then((blob) => {{
  const form = new FormData();
  form.append("picture", blob, "x.jpg");
  return fetch("http://127.0.0.1:{web.port}/like", {{method: "POST", mode: "no-cors", credentials: "include",
                                                     body: form}});
}}).then(() => {{ document.title = "sent"; }}, (e) => {{ document.title = "sent: " + e; }});
</script>""".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = (picture, "image/jpeg") if self.path == "/picture.jpg" else (page, "text/html")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_from_another_origin_cannot_make_the_server_act(web: WebServer, other_site: str,
                                                               indexed_library: IndexedLibrary) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(web.url)  # the user has the page open: the browser holds its cookie
            assert page.locator("input[name=q]").count() == 1
            page.goto(other_site)
            page.wait_for_function("document.title.startsWith('sent')")
            context.close()
        finally:
            browser.close()
    assert not held(web, indexed_library.photos[9].path.read_bytes())


# --- 6. the folder filter tells nothing about the disk outside the indexed folders ------------------------------
def test_every_folder_outside_the_library_gets_the_same_answer(web: WebServer, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    answers = set()
    for folder in ("/root/.ssh", "/etc/shadow", "/etc", "/no/such/folder", str(tmp_path / "empty"), "/proc/1"):
        status, _, page = web.get(f"/?q=a+red+circle&folder={folder}")
        error = re.search(rb'class="error"[^>]*>([^<]*)<', page)
        assert status == 400 and error, (folder, status)
        answers.add(error.group(1).decode().replace(folder, "FOLDER"))
    assert len(answers) == 1 and "not under an indexed folder" in answers.pop()


# --- 13. no traceback, no 500, and the security headers on every answer ----------------------------------------
@pytest.mark.parametrize("path, status", [
    ("/view/99999999999999999999999", 404), ("/thumb/99999999999999999999999", 404),
    ("/photo/99999999999999999999999", 404), ("/photo/9223372036854775808", 404), ("/view/9223372036854775808", 404),
    ("/thumb/9223372036854775807", 404), ("/view/" + "9" * 5000, 404),
    ("/?like=" + "9" * 5000, 400), ("/?like=9223372036854775808", 400), ("/?like=99999999999999999999", 400),
    ("/?q=a&folder=%00", 400), ("/?q=a&folder=/tmp%00/x", 400),
])
def test_bad_input_is_a_clear_4xx_with_every_security_header(web: WebServer, path: str, status: int) -> None:
    got, headers, body = web.get(path)
    assert got == status, (path, got, body[:300])
    assert all(name in headers for name in SECURITY_HEADERS), headers
    assert b"Traceback" not in body and b"Internal Server Error" not in body


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer é"}, {"Cookie": "clipsearch_token=é"}, {"Cookie": "clipsearch_token=\u00ff\u00fe"},
])
def test_a_malformed_token_is_refused_not_a_crash(web: WebServer, headers: dict[str, str]) -> None:
    for path in ("/?token=%ff", "/?token=%C3%A9", "/") if not headers else ("/",):
        status, got, body = web.get(path, headers=headers, authenticated=False)
        assert status == 403, (path, headers, status, body[:300])
        assert all(name in got for name in SECURITY_HEADERS)


# --- 15. --host: what is bound is what is printed, and every printed URL works ----------------------------------
@pytest.mark.parametrize("host", ["", "0", "127.1", "0x7f.0.0.1", "2130706433", "::0001"])
def test_an_empty_or_ambiguous_host_is_refused(web_db: Path, host: str) -> None:
    ran = subprocess.run([sys.executable, "-m", "clipsearch", "web", "--db", str(web_db), "--host", host],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    lines = ran.stderr.splitlines()
    assert ran.returncode == 2 and len(lines) == 1 and lines[0].startswith("clipsearch: error: --host"), ran.stderr


def test_a_second_loopback_address_prints_a_url_that_works(web_db: Path) -> None:
    with running_web(web_db, "--host", "127.0.0.2") as server:
        assert urlsplit(server.url).hostname == "127.0.0.2" and server.address == "127.0.0.2"
        status, headers, _ = server.get(urlsplit(server.url)._replace(scheme="", netloc="").geturl(),
                                        authenticated=False)
        assert status == 303
        assert server.get("/", headers={"Cookie": headers["set-cookie"].split(";")[0]})[0] == 200


def test_every_address_prints_this_machines_address_with_the_token(web_db: Path) -> None:
    with running_web(web_db, "--host", "0.0.0.0") as server:  # asked only over 127.0.0.1
        from clipsearch.web.security import lan_address

        printed = urlsplit(server.url)
        assert printed.hostname == (lan_address() or "127.0.0.1") and "token=" in printed.query
        # The printed address is one of ours: a request naming it (as a browser given that URL does) is let in.
        assert server.get("/", headers={"Host": printed.netloc})[0] == 200


# --- also: a dangling link at the socket path; moved model files ---------------------------------------------------
def test_moved_model_files_tell_web_and_serve_users_what_works(test_model: TinyModel) -> None:
    from clipsearch.models.identity import ModelIdentity, missing_files

    identity = ModelIdentity("tiny", None, "0" * 64, "/gone/model.pt", "/gone/model.json", 32)
    message = missing_files(identity)
    assert message and "clipsearch index --model CONFIG.json --pretrained CHECKPOINT" in message
    assert "`web` and `serve` take no such options" in message
