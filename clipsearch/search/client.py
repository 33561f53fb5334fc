"""Asking a running `clipsearch serve`: a query's answer, or None when no server of ours runs."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Any

from clipsearch.config import DataDir
from clipsearch.errors import ExitCode
from clipsearch.search.protocol import PROTOCOL_VERSION, ServerError, private_folder, read_all, socket_path
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.results import SearchResult

_CONNECT_TIMEOUT_S = 1.0
_ANSWER_TIMEOUT_S = 300.0  # an image query may have to load torch first


def _exchange(path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """Send one request; None if no server of ours answers there."""
    if not path.exists() or not private_folder(path.parent, create=False) or path.lstat().st_uid != os.getuid():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(_CONNECT_TIMEOUT_S)
        try:
            connection.connect(str(path))
        except OSError:
            return None  # a socket left behind by a server that died: search in-process
        connection.settimeout(_ANSWER_TIMEOUT_S)
        connection.sendall(json.dumps(request).encode() + b"\n")
        connection.shutdown(socket.SHUT_WR)
        answer = read_all(connection)
    try:
        return json.loads(answer)
    except ValueError:
        return None


def ask(data_dir: DataDir, kind: QueryKind, queries: list[str], options: QueryOptions,
        ) -> list[SearchResult] | None:
    """The server's answer to these queries, or None if no server runs for this database."""
    if kind is QueryKind.image:
        # The server has another working directory: send paths it can open, and show the user's own.
        sent = [os.path.abspath(q) for q in queries]
        shown = dict(zip(sent, queries))
    else:
        sent, shown = queries, {}
    within = os.path.abspath(options.within) if options.within else None
    request = {"version": PROTOCOL_VERSION, "kind": kind.value, "queries": sent,
               "options": asdict(QueryOptions(options.limit, options.min_score, within, options.include_self))}
    try:
        answer = _exchange(socket_path(data_dir), request)
    except OSError:
        return None
    if answer is None or answer.get("version") != PROTOCOL_VERSION:
        return None
    if "error" in answer:
        raise ServerError(answer["error"], answer.get("exit_code", ExitCode.ERROR))
    results = [SearchResult(**fields) for fields in answer["results"]]
    return [SearchResult(**{**asdict(r), "query": shown.get(r.query, r.query)}) for r in results] if shown else results


def server_info(data_dir: DataDir) -> dict[str, Any] | None:
    """pid and uptime of the server for this database, if one runs."""
    try:
        answer = _exchange(socket_path(data_dir), {"version": PROTOCOL_VERSION, "kind": "info"})
    except OSError:
        return None
    return answer if answer and answer.get("version") == PROTOCOL_VERSION else None


