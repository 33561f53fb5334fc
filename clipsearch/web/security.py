"""What every response of `clipsearch web` goes through: the Host check, the token, and the security headers.

A page on another site cannot read this server's answers (the same-origin policy), but it can point a DNS
name it controls at 127.0.0.1 and read them as its own ("DNS rebinding"). Such a request carries that name
in its Host header, so only this server's own names and addresses are let in. Away from loopback, a token
keeps other machines' users out: given once in the URL, it is swapped for a cookie at once.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "clipsearch_token"
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                           "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def own_names(bound_host: str) -> frozenset[str]:
    """The Host names a browser may use for a server bound to `bound_host`."""
    names = set(LOOPBACK_NAMES)
    if not is_loopback(bound_host):
        names |= {bound_host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names)


def host_name(header: str) -> str:
    """The name in a Host header, without its port or an IPv6 address's brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """ASGI middleware: refuses foreign Host headers, asks for the token when there is one, and adds the
    security headers to every response, errors included."""

    def __init__(self, app: ASGIApp, names: Iterable[str], token: str | None, any_address: bool) -> None:
        self.app = app
        self.names = frozenset(names)
        self.token = token
        # Bound to every address: any IP literal is one of ours, and a literal cannot be rebound.
        self.any_address = any_address

    def allowed_host(self, header: str) -> bool:
        name = host_name(header)
        return name in self.names or (self.any_address and _is_ip_literal(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        if not self.allowed_host(headers.get("host", "")):
            await _plain(secured, 400, "this server answers to its own address only (a foreign Host header)")
            return
        if self.token is not None:
            verdict = self._check_token(scope, headers)
            if verdict == "redirect":
                await _redirect_with_cookie(secured, scope, self.token)
                return
            if verdict == "refused":
                await _plain(secured, 403, "this server needs the token it printed when it started: open the URL "
                                           "it printed")
                return
        await self.app(scope, receive, secured)

    def _check_token(self, scope: Scope, headers: dict[str, str]) -> str:
        assert self.token is not None
        given = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get("token")
        if given is not None:
            return "redirect" if secrets.compare_digest(given, self.token) else "refused"
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no token
            return "refused"
        held = cookie.get(TOKEN_COOKIE)
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        for candidate in (held.value if held else "", bearer):
            if candidate and secrets.compare_digest(candidate, self.token):
                return "ok"
        return "refused"


async def _plain(send: Send, status: int, text: str) -> None:
    body = f"clipsearch web: {text}\n".encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(send: Send, scope: Scope, token: str) -> None:
    """The same address without its token, with the token now in a cookie: it stays out of history and links."""
    rest = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != "token"]
    location = scope.get("path", "/") + (f"?{urlencode(rest)}" if rest else "")
    cookie = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
