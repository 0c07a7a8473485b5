"""The workbench's one security layer: an ASGI middleware that every request passes, pages, API,
event streams and static files alike (ARCHITECTURE.md, "one web middleware").

Anchors: Jupyter Server (a random token by default, an XSRF token on every non-GET request, a Host
allow-list), Django's CSRF middleware (Origin checked against the host), the OWASP CSRF and DNS
rebinding cheat sheets.

1. **Host allow-list.** The ``Host`` header must name ``127.0.0.1``, ``localhost``, ``[::1]``, the
   address the server was started on, or a name given with ``--allow-host``. Anything else gets 400:
   a DNS-rebinding page (``evil.example`` resolving to 127.0.0.1) cannot read sessions or photos.
2. **Token.** With a token (``geolocate serve`` makes a random one by default), every request needs it:
   ``Authorization: Bearer``, or the ``geolocate_token`` cookie that a visit with ``?token=`` sets
   (HttpOnly, SameSite=Strict; the visit is redirected to the same URL without the token).
3. **Cross-site requests.** A state-changing request (anything but GET, HEAD, OPTIONS) whose
   ``Sec-Fetch-Site`` is not ``same-origin`` or ``none``, or whose ``Origin`` is not this server's
   own, is refused with 403. (Another port on the same machine is another origin.)
4. **CSRF token.** A state-changing request from a browser also needs ``csrf_token`` (a form field)
   or the ``X-CSRF-Token`` header, equal to HMAC-SHA256(server secret, the ``geolocate_browser``
   cookie): bound to the browser, and impossible to forge without the server's secret, even by a
   page that can set cookies for 127.0.0.1. Requests that carry the token in ``Authorization`` are
   not from a browser's ambient credentials and need no CSRF token.

The body of a form request is read once here (to find ``csrf_token``) and handed on unchanged; it is
limited to ``max_body`` bytes (413 beyond).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from urllib.parse import parse_qs, urlencode

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
TOKEN_COOKIE = "geolocate_token"
BROWSER_COOKIE = "geolocate_browser"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def host_name(host_header: str) -> str:
    """The host part of a ``Host`` header, lower case, without the port or IPv6 brackets.

    >>> host_name("[::1]:8765"), host_name("LocalHost:80"), host_name("evil.example")
    ('::1', 'localhost', 'evil.example')
    """
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def url_host(host: str) -> str:
    """``host`` as it is written in a URL: IPv6 addresses in brackets.

    >>> url_host("::1"), url_host("127.0.0.1")
    ('[::1]', '127.0.0.1')
    """
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class Security:
    """The middleware (pure ASGI). ``hosts``: the Host names allowed (loopback names are always);
    ``token``: required on every request when set; ``max_body``: the largest request body, bytes."""

    def __init__(self, app, *, token: str | None, hosts: Iterable[str], max_body: int):
        self.app = app
        self.token = token
        self.hosts = {h.lower().strip("[]") for h in hosts if h} | set(LOOPBACK_NAMES)
        self.max_body = max_body
        self.secret = secrets.token_bytes(32)

    # -- helpers ----------------------------------------------------------------------------------
    def csrf_for(self, browser: str) -> str:
        """The CSRF token of a browser id (hex HMAC-SHA256 with the server's secret)."""
        return hmac.new(self.secret, browser.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _headers(scope) -> dict[str, str]:
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}

    @staticmethod
    def _cookies(headers: dict[str, str]) -> dict[str, str]:
        from http.cookies import CookieError, SimpleCookie

        jar = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except CookieError:
            return {}
        return {k: m.value for k, m in jar.items()}

    async def _reply(self, send, status: int, text: str, headers: list | None = None) -> None:
        body = (text + "\n").encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ]
                + (headers or []),
            }
        )
        await send({"type": "http.response.body", "body": body})

    # -- the checks ---------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = self._headers(scope)
        host = host_name(headers.get("host", ""))
        if host not in self.hosts:
            return await self._reply(
                send,
                400,
                f"400: the Host {headers.get('host', '')!r} is not allowed (geolocate serve --allow-host)",
            )
        cookies = self._cookies(headers)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        by_header = bool(self.token and bearer and secrets.compare_digest(bearer, self.token))
        if self.token is not None:
            given = bearer or (query.get("token") or [""])[0] or cookies.get(TOKEN_COOKIE, "")
            if not given or not secrets.compare_digest(given, self.token):
                return await self._reply(
                    send, 401, "401: a valid token is required (open the URL geolocate serve printed)"
                )
            if query.get("token") and scope["method"] == "GET":  # set the cookie, drop the token from the URL
                rest = {k: v for k, v in query.items() if k != "token"}
                location = scope.get("path", "/") + (("?" + urlencode(rest, doseq=True)) if rest else "")
                return await self._reply(
                    send,
                    303,
                    "303: see the same page without the token in its address",
                    [
                        (b"location", location.encode("latin-1")),
                        (
                            b"set-cookie",
                            f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode(),
                        ),
                        (b"referrer-policy", b"no-referrer"),
                    ],
                )
        browser = cookies.get(BROWSER_COOKIE, "")
        fresh = not (len(browser) == 43 and browser.replace("-", "").replace("_", "").isalnum())
        if fresh:
            browser = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = self.csrf_for(browser)
        method = scope.get("method", "GET")
        if method not in SAFE_METHODS:
            why = self._cross_site(headers, scope)
            if why is not None:
                return await self._reply(send, 403, f"403: {why}")
            body, receive = await self._buffer(receive)
            if body is None:
                return await self._reply(
                    send, 413, f"413: the request is over the {self.max_body // 2**20} MB limit"
                )
            if not by_header:
                token = headers.get(CSRF_HEADER) or await self._form_token(scope, body)
                if fresh or not token or not secrets.compare_digest(token, self.csrf_for(browser)):
                    return await self._reply(
                        send, 403, "403: the CSRF token is missing or wrong (reload the page and try again)"
                    )

        async def send_with_cookie(message):
            if message["type"] == "http.response.start" and fresh:
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (b"set-cookie", f"{BROWSER_COOKIE}={browser}; HttpOnly; SameSite=Strict; Path=/".encode())
                ]
            if message["type"] == "http.response.start":
                extra = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"same-origin")]  # fmt: skip
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        return await self.app(scope, receive, send_with_cookie)

    def _cross_site(self, headers: dict[str, str], scope) -> str | None:
        """Why a state-changing request comes from another site or origin, or None."""
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"cross-site request refused (Sec-Fetch-Site: {site})"
        origin = headers.get("origin")
        if origin is not None:
            own = {f"{scope.get('scheme', 'http')}://{headers.get('host', '').lower()}"}
            if origin.lower() not in own:
                return f"cross-origin request refused (Origin: {origin})"
        return None

    async def _buffer(self, receive):
        """The whole request body (None when over the limit) and a ``receive`` that replays it."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None, receive
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return body, replay

    @staticmethod
    async def _form_token(scope, body: bytes) -> str | None:
        """``csrf_token`` from a urlencoded or multipart form body, parsed by Starlette (python-multipart)."""
        from starlette.requests import Request

        sent = False

        async def once():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        request = Request(scope, once)
        try:
            form = await request.form()
        except Exception:  # noqa: BLE001 - a malformed body has no token; the app answers it later
            return None
        try:
            value = form.get(CSRF_FIELD)
            return value if isinstance(value, str) else None
        finally:
            await form.close()
