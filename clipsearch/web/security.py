"""What every response of `clipsearch web` goes through: the Host check, the token, the cross-site checks, and
the security headers.

A page on another site cannot read this server's answers (the same-origin policy), but it can point a DNS
name it controls at 127.0.0.1 and read them as its own ("DNS rebinding"). Such a request carries that name
in its Host header, so only this server's own names and addresses are let in. A token keeps everyone else out,
on loopback too (any user of the machine can reach 127.0.0.1): given once in the URL, it is swapped for an
HttpOnly, SameSite=Strict cookie at once. A request that changes something (anything but GET and HEAD) must come
from the page itself: its Origin and Sec-Fetch-Site, when sent, must say so, and its form must carry the CSRF
token derived from the session token (`csrf_token`). Every response, errors and crashes included, carries the
security headers: the guard is the outermost layer, and turns any exception into a plain 500.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import secrets
import socket
import sys
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

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
SAFE_METHODS = frozenset({"GET", "HEAD"})
SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})  # Sec-Fetch-Site: the page itself, or the user typing


def new_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(token: str) -> str:
    """What the page's forms carry to prove they are the page's: tied to the session token, which only the
    page's own cookie holds."""
    return hmac.new(token.encode(), b"clipsearch web: csrf", hashlib.sha256).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """A constant-time comparison of any text a request carries (compare_digest refuses non-ASCII str)."""
    return secrets.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_any_address(host: str) -> bool:
    return host in ("0.0.0.0", "::")


def checked_host(host: str) -> str:
    """`--host` as given, when it names one address unambiguously: a canonical IP literal or a name. '' and the
    numeric spellings the C library also reads as addresses ('0', '127.1', '0x7f.1', '2130706433') are refused,
    so that what is bound is what is printed and what the Host check lets in. Raises UsageError."""
    from clipsearch.errors import UsageError

    if not host or host != host.strip():
        raise UsageError(f"--host {host!r}: name an address, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every "
                         "address)")
    try:
        canonical = str(ipaddress.ip_address(host))
    except ValueError:
        canonical = None
    if canonical is None:
        try:
            socket.inet_aton(host)
        except (OSError, ValueError):
            return host  # a name, resolved when it is bound
        canonical = socket.inet_ntoa(socket.inet_aton(host))
    if canonical != host:
        raise UsageError(f"--host {host}: an ambiguous spelling of an address; write it as {canonical}")
    return host


def lan_address(family: int = socket.AF_INET) -> str | None:
    """This machine's address on its network: the one a connection to a private address would leave from (a UDP
    socket is connected, which sends nothing)."""
    probe = "10.255.255.255" if family == socket.AF_INET else "fd00::1"
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as udp:
        udp.connect((probe, 9))
        address = udp.getsockname()[0]
        if not ipaddress.ip_address(address).is_unspecified:
            return address
    with contextlib.suppress(OSError):
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM):
            if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                return sockaddr[0]
    return None


def own_names(bound_host: str, shown_host: str | None = None) -> frozenset[str]:
    """The Host names a browser may use for a server bound to `bound_host` and announced at `shown_host`."""
    names = {*LOOPBACK_NAMES, bound_host.lower()}
    if shown_host:
        names.add(shown_host.lower())
    if not is_loopback(bound_host):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
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
    """ASGI middleware, outermost: refuses foreign Host headers, asks for the token, refuses cross-site requests
    that would change something, adds the security headers to every response, errors included, and turns an
    exception into a plain 500 (no traceback ever reaches a browser)."""

    def __init__(self, app: ASGIApp, names: Iterable[str], token: str, any_address: bool) -> None:
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
        started = False

        async def secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            refusal = self._refusal(scope, headers)
            if refusal == "redirect":
                await _redirect_with_cookie(secured, scope, self.token)
            elif refusal is not None:
                await _plain(secured, *refusal)
            else:
                await self.app(scope, receive, secured)
        except Exception as error:  # a bug of ours: said on the server's terminal, a bare 500 to the browser
            print(f"clipsearch web: internal error on {scope.get('method')} {scope.get('path')!r}: "
                  f"{type(error).__name__}: {error}", file=sys.stderr)
            if not started:
                await _plain(secured, 500, "internal error (the server's terminal says more)")

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | str | None:
        """Why a request is refused (status and text), "redirect" to swap a token in the URL for the cookie, or
        None to answer it."""
        host = headers.get("host", "")
        if not self.allowed_host(host):
            return 400, "this server answers to its own address only (a foreign Host header)"
        verdict = self._check_token(scope, headers)
        if verdict == "refused":
            return 403, "this server needs the token it printed when it started: open the URL it printed"
        if verdict == "redirect":
            return "redirect"
        if scope.get("method", "GET") not in SAFE_METHODS and not self._same_origin(host, headers):
            return 403, "a request from another site is refused: use the page itself"
        return None

    @staticmethod
    def _same_origin(host: str, headers: dict[str, str]) -> bool:
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site.strip().lower() not in SAME_ORIGIN_FETCHES:
            return False
        origin = headers.get("origin")
        if origin is None:
            return True  # an old browser, or not a browser: the form's CSRF token still has to match
        if origin.strip() == "null":  # what Chromium sends under the page's no-referrer policy: it must say more
            return fetch_site is not None
        parts = urlsplit(origin.strip().lower())
        return parts.scheme == "http" and parts.netloc == host.strip().lower() and not parts.path.strip("/")

    def _check_token(self, scope: Scope, headers: dict[str, str]) -> str:
        given = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get("token")
        if given is not None:
            return "redirect" if same_secret(given, self.token) else "refused"
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no token
            return "refused"
        held = cookie.get(TOKEN_COOKIE)
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        for candidate in (held.value if held else "", bearer):
            if candidate and same_secret(candidate, self.token):
                return "ok"
        return "refused"


async def _plain(send: Send, status: int, text: str) -> None:
    body = f"clipsearch web: {text}\n".encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(send: Send, scope: Scope, token: str) -> None:
    """The same address without its token, with the token now in a cookie: it stays out of history and links."""
    rest = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != "token"]
    path = "/" + quote(scope.get("path", "/"), safe="/").lstrip("/")  # never //host: a link elsewhere
    location = path + (f"?{urlencode(rest)}" if rest else "")
    cookie = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
