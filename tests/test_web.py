"""`clipsearch web` over HTTP: the page answers searches, and each security promise of the issue holds."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import IndexedLibrary
from web_server import WebServer, multipart, running_web

pytestmark = pytest.mark.slow


def catalogue_dump(db: Path) -> str:
    connection = sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def tile_paths(page: bytes) -> list[str]:
    """The full paths of the results on a page, in rank order (each tile's title starts with it)."""
    return [title.split(" · ")[0] for title in re.findall(r'<a href="/view/\d+[^"]*" title="([^"]*)"', page.decode())]


def result_ids(page: bytes) -> list[int]:
    return [int(i) for i in re.findall(r'<img src="/thumb/(\d+)"', page.decode())]


def test_a_text_search_is_an_address_and_lists_the_best_photo_first(web: WebServer,
                                                                    indexed_library: IndexedLibrary) -> None:
    assert web.url == f"http://127.0.0.1:{web.port}/?token={web.token}"
    status, headers, page = web.get("/?q=a+red+circle&limit=5")
    assert status == 200 and headers["content-type"].startswith("text/html")
    paths = tile_paths(page)
    assert len(paths) == 5
    top = indexed_library.photo(paths[0]).scene.main
    assert (top.colour, top.kind) == ("red", "circle")
    assert 'value="a red circle"' in page.decode()  # the box shows the query: reload and back keep it


def test_the_page_carries_its_own_assets_and_nothing_from_the_network(web: WebServer) -> None:
    _, headers, page = web.get("/?q=a+blue+square")
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    text = page.decode()
    assert not re.search(r"(src|href|action)=\"(https?:)?//", text)  # nothing fetched from elsewhere
    assert not re.search(r"<script(?![^>]*\bsrc=)", text)  # no inline script: the policy would block it
    assert not re.search(r"\son\w+=|\sstyle=", text)  # no inline handlers or styles either
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', text):
        assert web.get(asset)[0] == 200, asset


def test_thumbnails_and_photos_are_served_by_catalogue_id(web: WebServer, indexed_library: IndexedLibrary) -> None:
    status, _, page = web.get("/?q=a+green+triangle&limit=3")
    first = result_ids(page)[0]
    status, headers, thumb = web.get(f"/thumb/{first}")
    assert status == 200 and headers["content-type"] == "image/jpeg" and thumb.startswith(b"\xff\xd8")
    assert web.get(f"/thumb/{first}", headers={"If-None-Match": headers["etag"]})[0] == 304
    assert web.get(f"/photo/{first}")[0] == 200
    # A file a browser shows as it is (the first such result) is served itself, untouched.
    ids, paths = result_ids(page), tile_paths(page)
    native = next(rank for rank, path in enumerate(paths)
                  if Path(path).suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    status, _, original = web.get(f"/photo/{ids[native]}")
    assert status == 200 and original == Path(paths[native]).read_bytes()
    path = paths[0]
    status, _, view = web.get(f"/view/{first}?q=a+green+triangle")
    assert status == 200 and Path(path).name in view.decode()


@pytest.mark.parametrize("path", [
    "/thumb/../../../../etc/passwd", "/photo/..%2F..%2F..%2Fetc%2Fpasswd", "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2f..%2fweb%2fapp.py",
    "/photo/-1", "/photo/1.5", "//etc/passwd", "/view/%2Fetc%2Fpasswd",
])
def test_no_path_from_a_request_reaches_the_disk(web: WebServer, path: str) -> None:
    status, _, body = web.get(path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and b"import" not in body


def test_an_id_that_is_not_in_the_catalogue_is_not_found(web: WebServer) -> None:
    for path in ("/thumb/999999", "/photo/999999", "/view/999999"):
        status, _, body = web.get(path)
        assert status == 404, path
        assert b"no photo has id 999999" in body
    status, _, page = web.get("/?like=999999")
    assert status == 400 and b"no photo has id 999999" in page


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "attacker.localhost",
                                  ""])
def test_a_foreign_host_header_is_refused(web: WebServer, host: str) -> None:
    status, _, body = web.get("/?q=a+red+circle", headers={"Host": host})
    assert status == 400 and b"Host" in body and b"<ol" not in body


def test_its_own_names_are_let_in(web: WebServer) -> None:
    for host in (f"127.0.0.1:{web.port}", f"localhost:{web.port}", f"[::1]:{web.port}", "LOCALHOST"):
        assert web.get("/", headers={"Host": host})[0] == 200, host


def test_search_by_a_dropped_picture(web: WebServer, indexed_library: IndexedLibrary, web_db: Path) -> None:
    photo = next(p for p in indexed_library.photos if p.format == "jpeg")
    body, content_type = multipart({"folder": "", "csrf": web.csrf()}, photo.name, photo.path.read_bytes())
    status, headers, _ = web.request("POST", "/like", headers={"Content-Type": content_type}, body=body)
    assert status == 303
    location = headers["location"]
    assert "picture" in parse_qs(urlsplit(location).query)
    status, _, page = web.get(location)
    assert status == 200
    assert tile_paths(page)[0] == str(photo.path)  # a copy of an indexed photo finds it first
    assert f"Photos like {photo.name}".encode() in page


def test_an_oversized_upload_is_refused_before_it_is_read(web: WebServer) -> None:
    status, _, body = web.request("POST", "/like", headers={
        "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(65 << 20)}, body=b"")
    assert status == 413 and b"larger than 64 MB" in body


def test_a_non_image_upload_is_one_clear_error(web: WebServer) -> None:
    body, content_type = multipart({"csrf": web.csrf()}, "notes.jpg", b"these are not pixels" * 100, "image/jpeg")
    status, _, page = web.request("POST", "/like", headers={"Content-Type": content_type}, body=body)
    assert status == 400
    assert re.search(rb'class="error"[^>]*>notes.jpg: ', page)


def test_no_request_changes_the_database_or_the_photos(web: WebServer, web_db: Path,
                                                       indexed_library: IndexedLibrary) -> None:
    def photos_state() -> dict[str, str]:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(indexed_library.root.rglob("*")) if p.is_file()}

    before, photos_before = catalogue_dump(web_db), photos_state()
    photo = indexed_library.photos[3]
    body, content_type = multipart({"csrf": web.csrf()}, "upload.png", photo.path.read_bytes())
    web.request("POST", "/like", headers={"Content-Type": content_type}, body=body)
    for path in ("/?q=a+yellow+star", "/?like=2", "/view/2", "/thumb/2", "/photo/2", "/?q=x&after=2020&tag=red"):
        web.get(path)
    for method in ("PUT", "DELETE", "PATCH"):
        assert web.request(method, "/", body=b"")[0] == 405
    assert catalogue_dump(web_db) == before
    assert photos_state() == photos_before


def test_the_folder_and_date_filters_narrow_the_results(web: WebServer, indexed_library: IndexedLibrary) -> None:
    summer = indexed_library.root / "2019" / "summer"
    status, _, page = web.get(f"/?q=a+red+circle&limit=100&folder={summer}")
    paths = tile_paths(page)
    assert paths and all(path.startswith(f"{summer}/") for path in paths)
    assert len(paths) == sum(1 for p in indexed_library.photos if p.path.parent == summer)
    status, _, page = web.get("/?q=a+red+circle&limit=100&after=2020-01-01")
    dated = [indexed_library.photo(path).taken_at for path in tile_paths(page)]
    assert dated and all(taken and taken >= "2020" for taken in dated)
    status, _, page = web.get("/?q=a+red+circle&after=2020-13")
    assert status == 400 and b'class="error"' in page


def test_away_from_loopback_it_warns_and_asks_for_its_token(web_db: Path) -> None:
    with running_web(web_db, "--host", "0.0.0.0") as server:
        said = "".join(server.stderr_lines)
        assert "warning: --host 0.0.0.0" in said
        token = parse_qs(urlsplit(server.url).query)["token"][0]
        assert len(token) >= 24
        assert server.get("/", authenticated=False)[0] == 403
        assert server.get("/?token=wrong", authenticated=False)[0] == 403
        assert server.get("/thumb/1", headers={"Authorization": "Bearer nope"})[0] == 403
        assert server.get("/", headers={"Cookie": "clipsearch_token=nope"})[0] == 403
        status, headers, _ = server.get(f"/?q=a+cat&token={token}", authenticated=False)
        assert status == 303 and headers["location"] == "/?q=a+cat"  # the token leaves the address at once
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert server.get("/?q=a+cat", headers={"Cookie": cookie.split(";")[0]})[0] == 200
        assert server.get("/thumb/1", headers={"Authorization": f"Bearer {token}"})[0] == 200
        # The Host check still holds with the token.
        assert server.get("/", headers={"Host": "evil.example", "Cookie": cookie.split(";")[0]})[0] == 400


def test_the_page_and_the_commands_share_one_server(web: WebServer, web_db: Path) -> None:
    """`web` holds the model once for both: the commands for its database are answered by it, on the socket."""
    import json

    from helpers import run_cli

    from clipsearch.config import DataDir
    from clipsearch.library.remote import server_info

    before = server_info(DataDir(web_db))
    assert before is not None, "web should answer on the database's socket as serve does"
    found = run_cli("query", "a red circle", "--db", web_db, "-f", "json")
    assert found.exit_code == 0, found.stderr
    assert json.loads(found.stdout)
    assert server_info(DataDir(web_db))["answered"] == before["answered"] + 1
    # The commands' API is on the socket only, never on the page's TCP port.
    status, _, _ = web.request("POST", "/v1/search", body=b'{"kind": "text", "queries": ["x"], "options": {}}')
    assert status in (403, 404, 405)
