"""Pictures by catalogue id only (a path is never taken from a request), and pictures dropped on the page."""

from __future__ import annotations

import io
import mimetypes
import os
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from clipsearch.errors import ClipsearchError, ImageError, describe_os_error
from clipsearch.imaging.thumbnails import NotCataloguedError, read_catalogued
from clipsearch.search.results import SearchAnswer
from clipsearch.store.rows import FileRecord
from clipsearch.web.page_state import PageState
from clipsearch.web.pages import render_results
from clipsearch.web.query import PageQuery
from clipsearch.web.security import same_secret

MAX_UPLOAD_BYTES = 64 << 20
LARGE_SIZE = 2048  # formats a browser cannot show are sent as a JPEG this large
BROWSER_FORMATS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".avif"})
PLACEHOLDER = (b'<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
               b'<rect width="320" height="240" fill="#444"/><text x="160" y="128" fill="#bbb" font-size="18" '
               b'text-anchor="middle" font-family="sans-serif">cannot be read</text></svg>')


async def _catalogued(request: Request) -> FileRecord | Response:
    """The photo a request names by catalogue id, or the 404 that says there is none."""
    library: PageState = request.app.state.library
    row_id = request.path_params["row_id"]
    record = await run_in_threadpool(library.record, row_id)
    return record or PlainTextResponse(f"no photo has id {row_id} in this database", status_code=404)


async def thumbnail(request: Request) -> Response:
    record = await _catalogued(request)
    if isinstance(record, Response):
        return record
    made = await run_in_threadpool(request.app.state.library.thumbnail, record)
    if made is None:  # gone or unreadable since it was indexed: a placeholder, not a broken image
        return Response(PLACEHOLDER, media_type="image/svg+xml", headers={"cache-control": "no-store"})
    data, key = made
    etag = f'"{key}"'
    headers = {"etag": etag, "cache-control": "private, no-cache"}  # revalidated: the file may change
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/jpeg", headers=headers)


async def photo(request: Request) -> Response:
    """The photo itself when a browser can show its format, else a large JPEG made from it; only while the path
    still holds the catalogued file (see open_catalogued): never what a link put in its place leads to."""
    record = await _catalogued(request)
    if isinstance(record, Response):
        return record
    try:
        data = await run_in_threadpool(read_catalogued, record.path, record.size, record.mtime_ns)
    except NotCataloguedError as error:
        return PlainTextResponse(str(error), status_code=409 if error.changed else 404)
    except OSError as error:
        return PlainTextResponse(f"the file cannot be read: {describe_os_error(error)}", status_code=404)
    suffix = Path(record.path).suffix.lower()
    headers = {"cache-control": "private, no-cache"}
    if suffix in BROWSER_FORMATS and await run_in_threadpool(_is_image, data):
        return Response(data, media_type=mimetypes.types_map.get(suffix, "application/octet-stream"),
                        headers=headers)
    try:
        large = await run_in_threadpool(_large_jpeg, data)
    except (OSError, ImageError) as error:
        return PlainTextResponse(f"the file cannot be shown: {error}", status_code=404)
    return Response(large, media_type="image/jpeg", headers=headers)


def _is_image(data: bytes) -> bool:
    """Whether Pillow reads the bytes' header as a picture: anything else is decoded (and refused) instead of
    being sent as it is."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format is not None
    except Exception:  # any failure to identify: not sent as it is
        return False


def _large_jpeg(data: bytes) -> bytes:
    from clipsearch.imaging.decode import decode_image
    from clipsearch.imaging.thumbnails import make_thumbnail

    return make_thumbnail(decode_image(data, target_size=LARGE_SIZE).image, LARGE_SIZE)


async def dropped_picture(request: Request) -> Response:
    library: PageState = request.app.state.library
    picture = library.picture(request.path_params["key"])
    if picture is None:
        return PlainTextResponse("this server no longer holds that picture", status_code=404)
    return Response(picture.thumbnail, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


async def search_by_picture(request: Request) -> Response:
    """A picture sent from the page: held in memory, then its results, at an address. (Starlette spools an upload
    over 1 MB to a private temporary file while the form is read, and deletes it when the form is closed.)"""
    library: PageState = request.app.state.library
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return PlainTextResponse("send the picture with a Content-Length", status_code=411)
    if int(length) > MAX_UPLOAD_BYTES:
        return PlainTextResponse(f"the picture is larger than {MAX_UPLOAD_BYTES >> 20} MB", status_code=413)
    form = await request.form(max_files=1, max_fields=len(PageQuery.__dataclass_fields__) + 1)
    query = PageQuery()
    try:
        csrf = form.get("csrf")
        if not isinstance(csrf, str) or not same_secret(csrf, request.app.state.csrf):
            return PlainTextResponse("clipsearch web: this form did not come from the page (no CSRF token, or a "
                                     "stale one): reload the page and send it again", status_code=403)
        query = PageQuery.from_params({k: v for k, v in form.items() if isinstance(v, str)})
        upload = form.get("picture")
        if upload is None or isinstance(upload, str):
            return PlainTextResponse("no picture was sent (a form field named picture)", status_code=400)
        data = await upload.read()
        name = os.path.basename(upload.filename or "") or "dropped picture"
        key = await run_in_threadpool(library.add_picture, data, name)
    except ClipsearchError as error:
        return await render_results(request, query, SearchAnswer([]), str(error), 400)
    finally:
        await form.close()
    return RedirectResponse(query.link(q="", like=None, picture=key), status_code=303)
