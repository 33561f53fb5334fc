"""Running `clipsearch web` as a user does, in a subprocess, for the web tests."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class WebServer:
    url: str  # as printed, with its token
    port: int
    stderr_lines: list[str]

    @property
    def address(self) -> str:
        """Where the tests connect: the printed address when it is a loopback one, else 127.0.0.1 (a test sends
        nothing to any other address)."""
        host = urlsplit(self.url).hostname or "127.0.0.1"
        try:
            return host if ipaddress.ip_address(host).is_loopback else "127.0.0.1"
        except ValueError:
            return "127.0.0.1"

    @property
    def base(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.url).query)["token"][0]

    @property
    def cookie(self) -> str:
        """The Cookie header a browser sends once it has opened the printed URL."""
        return f"clipsearch_token={self.token}"

    def csrf(self) -> str:
        """The CSRF token the page's upload form carries."""
        found = re.search(rb'name="csrf" value="([^"]+)"', self.get("/")[2])
        assert found, "the page's upload form should carry a CSRF token"
        return found.group(1).decode()

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                body: bytes | None = None, authenticated: bool = True, timeout: float = 60,
                ) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP request, with exactly the headers given (and Host, unless given), plus the token's cookie
        as the page's own browser sends it, unless `authenticated` is False or the headers carry a token."""
        connection = http.client.HTTPConnection(self.address, self.port, timeout=timeout)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            headers = {"Host": f"{self.address}:{self.port}", **(headers or {})}
            if authenticated and "Cookie" not in headers and "Authorization" not in headers:
                headers["Cookie"] = self.cookie
            if body is not None and "Content-Length" not in headers:
                headers["Content-Length"] = str(len(body))
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def get(self, path: str, **kwargs) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, **kwargs)


@contextlib.contextmanager
def running_web(db: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[WebServer]:
    server = subprocess.Popen([sys.executable, "-m", "clipsearch", "web", "--db", str(db), *extra], cwd=REPO,
                              stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    try:
        assert server.stderr is not None
        for line in server.stderr:  # "loading ...", then "serving ... at URL" once it answers
            lines.append(line)
            found = re.search(r" at (http://\S+) \(Ctrl-C", line)
            if found:
                break
        else:
            pytest.fail(f"`clipsearch web` exited with {server.wait()} before serving: {''.join(lines)}")
        url = found.group(1)
        port = urlsplit(url).port
        assert port is not None
        # The rest of stderr, read as it comes (a full pipe would stop the server), for the tests to look at.
        threading.Thread(target=_drain, args=(server.stderr, lines), daemon=True).start()
        yield WebServer(url, port, lines)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def _drain(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def multipart(fields: dict[str, str], file_name: str, data: bytes, content_type: str = "image/jpeg",
              ) -> tuple[bytes, str]:
    """A multipart/form-data body with the picture in a field named `picture`, and its Content-Type."""
    boundary = "clipsearch-test-boundary-7c1f"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="picture"; filename="{file_name}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
