"""Cross-origin reads of ``fluxscape serve`` (CORS) for browser clients such as STAC Browser.

Only reads are shared: GET and HEAD responses, and the preflight (OPTIONS) of a GET or HEAD.
``origins`` (``fluxscape serve --cors-origin``, repeatable) lists the web origins allowed,
``*`` meaning any. The wildcard only ever applies to anonymous requests, whose responses hold
public products only (the data policy of :mod:`fluxscape.catalog.serve`): a request with an
``Authorization`` header (or a preflight announcing one) may read restricted products, and is
shared only with an origin listed by name (answered with that origin and ``Vary: Origin``),
never with ``*``. No cookies are used, so credentials are never allowed.
"""

from __future__ import annotations

from collections.abc import Iterable

from fluxscape.catalog.guard import ASGIApp, Message, Receive, Scope, Send

#: Response headers a cross-origin script may read (ranges and validators of Zarr chunks).
EXPOSED = "Content-Length, Content-Range, Content-Type, ETag, Last-Modified, Accept-Ranges"
#: Seconds a browser may cache a preflight answer.
MAX_AGE = "600"


class Cors:
    """ASGI middleware adding CORS headers to GET/HEAD responses and answering their
    preflights (see the module doc); ``origins`` empty turns CORS off."""

    def __init__(self, app: ASGIApp, origins: Iterable[str] = ("*",)):
        self.app = app
        listed = [o.strip().rstrip("/") for o in origins if o.strip()]
        self.any_origin = "*" in listed
        self.named = {o for o in listed if o != "*"}

    def allowed(self, origin: str, authorized: bool) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, None to refuse."""
        if origin in self.named:
            return origin
        if self.any_origin and not authorized:
            return "*"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        origin = headers.get(b"origin", b"").decode("latin-1")
        method = scope["method"]
        if not origin or not (self.any_origin or self.named):
            return await self.app(scope, receive, send)
        asked = headers.get(b"access-control-request-method", b"").decode("latin-1").upper()
        if method == "OPTIONS" and asked:
            wanted = headers.get(b"access-control-request-headers", b"").decode("latin-1")
            authorized = "authorization" in wanted.lower()
            return await self._preflight(send, origin, asked, authorized)
        if method not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        allow = self.allowed(origin, b"authorization" in headers)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = []
                if allow is not None:
                    extra.append((b"access-control-allow-origin", allow.encode("latin-1")))
                    extra.append((b"access-control-expose-headers", EXPOSED.encode()))
                if allow != "*":
                    extra.append((b"vary", b"Origin"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return await self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, origin: str, asked: str, authorized: bool) -> None:
        """Answer a preflight: 204 with the allowed origin, methods and headers, or 403."""
        allow = self.allowed(origin, authorized)
        if allow is None or asked not in ("GET", "HEAD"):
            head = [(b"content-length", b"0"), (b"vary", b"Origin")]
            await send({"type": "http.response.start", "status": 403, "headers": head})
            await send({"type": "http.response.body", "body": b""})
            return
        head = [
            (b"access-control-allow-origin", allow.encode("latin-1")),
            (b"access-control-allow-methods", b"GET, HEAD"),
            (b"access-control-allow-headers", b"Authorization, Range, Accept"),
            (b"access-control-max-age", MAX_AGE.encode()),
            (b"content-length", b"0"),
        ]
        if allow != "*":
            head.append((b"vary", b"Origin"))
        await send({"type": "http.response.start", "status": 204, "headers": head})
        await send({"type": "http.response.body", "body": b""})
