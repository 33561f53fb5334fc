"""The resident server's API on its private Unix socket: what `Library` asks it, answered by one LocalLibrary.

Routes take and give JSON (clipsearch.library.wire). Every request, however malformed, gets a JSON answer:
400 with the error and the exit code a local answer would give, 413 for a request too large, 500 for a
failure of ours. The work runs in a thread, so the hello of a new client is answered at once even while a
long request is being worked on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clipsearch.errors import ClipsearchError, ExitCode
from clipsearch.library import wire
from clipsearch.library.local import LocalLibrary


class _TooLarge(Exception):
    pass


async def _body(request: Request) -> dict[str, Any]:
    size = int(request.headers.get("content-length") or 0)
    if size > wire.MAX_REQUEST_BYTES:
        raise _TooLarge
    chunks, received = [], 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > wire.MAX_REQUEST_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return wire.loads(b"".join(chunks))


def _error(message: str, status: int, code: int = ExitCode.ERROR) -> JSONResponse:
    return JSONResponse({"error": message, "exit_code": int(code)}, status_code=status)


Work = Callable[[LocalLibrary, dict[str, Any]], dict[str, Any]]


def _route(work: Work) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def answer(request: Request) -> JSONResponse:
        library: LocalLibrary = request.app.state.library
        try:
            data = await _body(request)
            return JSONResponse(await run_in_threadpool(work, library, data))
        except _TooLarge:
            return _error("a request too large for the server: it is answered in-process", 413)
        except ClipsearchError as error:
            return _error(str(error), 400, error.exit_code)
        except (wire.WireError, KeyError, TypeError, ValueError) as error:
            return _error(f"a malformed request ({error})", 400)
        except Exception as error:  # one failed request must not take the server down with it
            return _error(f"internal error: {type(error).__name__}: {error}", 500)

    return answer


def _search(library: LocalLibrary, data: dict[str, Any]) -> dict[str, Any]:
    request = wire.SearchRequest.from_json(data)
    return wire.answer_to_json(library.search(request.kind, request.queries, request.options, request.where))


def _classify(library: LocalLibrary, data: dict[str, Any]) -> dict[str, Any]:
    request = wire.ClassifyRequest.from_json(data)
    found = library.classify(request.images, request.labels, request.templates, request.top)
    return wire.classifications_to_json(found)


def _locate(library: LocalLibrary, data: dict[str, Any]) -> dict[str, Any]:
    request = wire.LocateRequest.from_json(data)
    skipped: list[tuple[str, str]] = []
    found = library.locate(request.text, request.images, request.top, lambda path, why: skipped.append((path, why)))
    return wire.located_to_json(found, skipped)


def _duplicates(library: LocalLibrary, data: dict[str, Any]) -> dict[str, Any]:
    request = wire.DuplicatesRequest.from_json(data)
    return wire.duplicates_to_json(*library.duplicates(request.within, request.include_similar, request.threshold))


async def _hello(request: Request) -> JSONResponse:
    library: LocalLibrary = request.app.state.library
    return JSONResponse({"version": wire.API_VERSION, "pid": os.getpid(), "database": str(library.data_dir.root),
                         "uptime_s": time.time() - request.app.state.started, "answered": library.answered})


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _error(f"no such route: {request.method} {request.url.path}", getattr(exc, "status_code", 404))


def make_api(library: LocalLibrary) -> Starlette:
    routes = [
        Route("/v1/hello", _hello),
        Route("/v1/search", _route(_search), methods=["POST"]),
        Route("/v1/classify", _route(_classify), methods=["POST"]),
        Route("/v1/locate", _route(_locate), methods=["POST"]),
        Route("/v1/duplicates", _route(_duplicates), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.library = library
    app.state.started = time.time()
    return app
