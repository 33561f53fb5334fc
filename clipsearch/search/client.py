"""Asking a running `clipsearch serve`: a query's answer, or None when no server of ours answers in time."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from clipsearch.config import DataDir
from clipsearch.errors import ExitCode
from clipsearch.search.protocol import (
    HELLO_TIMEOUT_S,
    MAX_REQUEST_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    ServerError,
    decode,
    private_folder,
    receive,
    socket_path,
)
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.results import SearchAnswer, SearchResult

# A live server answers a text query in milliseconds; this bounds a server stopped after its hello, while leaving
# room for the first image query of a fresh server, which may load torch.
ANSWER_DEADLINE_S = 120.0
_MAX_ANSWER_BYTES = 1 << 30


def _exchange(path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """Send one request; None if no server of ours answers there, or it broke the protocol."""
    message = json.dumps(request).encode()
    if len(message) > MAX_REQUEST_BYTES:
        return None
    if not path.exists() or not private_folder(path.parent, create=False) or path.lstat().st_uid != os.getuid():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.settimeout(HELLO_TIMEOUT_S)
            connection.connect(str(path))
            hello = decode(receive(connection, 4096, time.monotonic() + HELLO_TIMEOUT_S, until_newline=True))
            if hello.get("version") != PROTOCOL_VERSION:
                return None  # another clipsearch's server: search in-process
            connection.sendall(message + b"\n")
            connection.shutdown(socket.SHUT_WR)
            return decode(receive(connection, _MAX_ANSWER_BYTES, time.monotonic() + ANSWER_DEADLINE_S))
        except (OSError, ProtocolError):
            return None  # not there, stopped, swamped or gone: search in-process


def ask(data_dir: DataDir, kind: QueryKind, queries: list[str], options: QueryOptions,
        ) -> SearchAnswer | None:
    """The server's answer to these queries, or None if no server runs for this database."""
    if kind is QueryKind.image:
        # The server has another working directory: send paths it can open, and show the user's own.
        sent = [os.path.abspath(q) for q in queries]
        shown = dict(zip(sent, queries))
    else:
        sent, shown = queries, {}
    # Paths the server can open: folders and --like images as absolute paths.
    terms = tuple(replace(t, value=os.path.abspath(t.value)) if t.kind is QueryKind.image else t
                  for t in options.terms)
    sent_options = replace(options, within=tuple(os.path.abspath(folder) for folder in options.within), terms=terms)
    request = {"version": PROTOCOL_VERSION, "kind": kind.value, "queries": sent, "options": asdict(sent_options)}
    answer = _exchange(socket_path(data_dir), request)
    if answer is None or answer.get("version") != PROTOCOL_VERSION:
        return None
    if "error" in answer:
        raise ServerError(answer["error"], answer.get("exit_code", ExitCode.ERROR))
    results = [SearchResult(**fields) for fields in answer["results"]]
    if shown:
        results = [SearchResult(**{**asdict(r), "query": shown.get(r.query, r.query)}) for r in results]
    return SearchAnswer(results, int(answer.get("missing", 0)))


def server_info(data_dir: DataDir) -> dict[str, Any] | None:
    """pid, uptime and requests answered of the server for this database, if one runs and answers in time."""
    answer = _exchange(socket_path(data_dir), {"version": PROTOCOL_VERSION, "kind": "info"})
    return answer if answer and answer.get("version") == PROTOCOL_VERSION else None
