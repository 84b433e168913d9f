"""What protects ``fluxscape serve`` before a request reaches a route.

- :class:`ServeLimits`: every limit of the server, with its default (``fluxscape serve
  --limit NAME=VALUE`` changes one);
- :class:`Guard`: an ASGI middleware refusing, with a short JSON error and without echoing the
  request, paths and query strings that are too long (414), NUL bytes anywhere in the path or
  query (400), bodies that are too large (413) or too slow (408), tiler requests over the
  client's rate (429 with ``Retry-After``) and images larger than ``max_image`` pixels a side
  (400). A request body is read whole (at most ``max_body`` bytes) before the app sees it, and
  at most ``max_renders`` tiler requests run at once;
- :func:`protocol_class`: uvicorn's HTTP/1.1 protocol with a deadline for the request head
  (``timeout_header``), which uvicorn lacks: a connection that sends no complete request head
  within it, whether idle from the start or trickling headers, is closed.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import parse_qsl

from fluxscape.errors import FluxscapeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServeLimits:
    """Limits of ``fluxscape serve`` (all per request unless said otherwise)."""

    #: Characters of the URL path (longer: 414).
    max_path: int = 1024
    #: Bytes of the query string (longer: 414).
    max_query: int = 8192
    #: Bytes of a request body (larger: 413); only POST /search and POST /tiler/... take one.
    max_body: int = 1_048_576
    #: Seconds to receive a request body (slower: 408).
    timeout_body: float = 10.0
    #: Largest width or height in pixels of an image the tiler renders (tile size, bbox or
    #: feature image, ``max_size``); a bbox or feature image without a size is read at most
    #: this large.
    max_image: int = 2048
    #: Largest ``cover_scale`` of a statistics request (its coverage raster is the image size
    #: times this a side: 4 x 2048 pixels is a 64 MiB raster).
    max_cover_scale: int = 4
    #: Layers (bands) one tiler request may read from a 3D variable (choose steps with ``sel``).
    max_bands: int = 4
    #: Tiler requests rendered at once (others wait their turn): bounds the memory of images
    #: (a 2048 x 2048 image takes about 200 MiB while it is rendered).
    max_renders: int = 2
    #: Tiler requests per second per client address (0: no limit) ...
    tile_rate: float = 20.0
    #: ... with bursts of up to this many.
    tile_burst: int = 60
    #: Seconds an idle keep-alive connection stays open.
    timeout_keep_alive: float = 5.0
    #: Seconds a connection has to send a complete request head, from its opening or from the
    #: previous response.
    timeout_header: float = 10.0
    #: Concurrent connections and requests before the server answers 503.
    limit_concurrency: int = 1000
    #: Bytes of a request head (the request line and headers; larger: 400).
    max_header: int = 16_384

    @classmethod
    def parse(cls, settings: list[str] | tuple[str, ...]) -> ServeLimits:
        """Defaults changed by ``NAME=VALUE`` strings (``--limit`` options)."""
        types = {f.name: f.type for f in fields(cls)}
        changes: dict[str, Any] = {}
        for text in settings:
            name, sep, value = text.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in types:
                known = ", ".join(types)
                raise FluxscapeError(f"--limit {text!r}: expected NAME=VALUE, NAME one of {known}")
            try:
                number = float(value) if types[name] == "float" else int(value)
            except ValueError as exc:
                raise FluxscapeError(f"--limit {text!r}: {value!r} is not a number") from exc
            if number < 0:
                raise FluxscapeError(f"--limit {text!r}: must not be negative")
            changes[name] = number
        return replace(cls(), **changes)


def error_body(code: str, description: str) -> bytes:
    """The JSON body of every error response: ``{"code": ..., "description": ...}``."""
    return json.dumps({"code": code, "description": description}).encode()


async def send_error(
    send: Send,
    status: int,
    code: str,
    description: str,
    headers: dict | None = None,
    close: bool = False,
) -> None:
    """Answer with a JSON error; ``close`` the connection after it (a body left unread)."""
    body = error_body(code, description)
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        head.append((b"connection", b"close"))
    head += [(k.encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class TokenBuckets:
    """A token bucket per client: ``rate`` tokens a second, at most ``burst`` stored."""

    #: Clients remembered before full (idle) buckets are forgotten.
    PRUNE_AT = 10_000

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, max(1, burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """Take a token for ``client``: 0 if it had one, else the seconds until it will."""
        now = self.clock()
        tokens, then = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > self.PRUNE_AT:
            self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        full = [
            c
            for c, (t, then) in self._buckets.items()
            if t + (now - then) * self.rate >= self.burst
        ]
        for client in full:
            del self._buckets[client]


#: An image size in a tiler path: ``/bbox/.../{width}x{height}.png``, ``/feature/{w}x{h}``.
_SIZE_IN_PATH = re.compile(r"/(\d+)x(\d+)(?:\.|$)")
_SIZE_PARAMS = ("width", "height", "tilesize", "max_size")


def image_size_error(path: str, query: str, limits: ServeLimits) -> str | None:
    """Why a tiler request asks for an image (or coverage raster) too large, None if it does
    not."""
    largest = limits.max_image
    found = _SIZE_IN_PATH.search(path)
    if found and max(int(found[1]), int(found[2])) > largest:
        return f"image size {found[1]}x{found[2]}: at most {largest} pixels a side"
    for name, value in parse_qsl(query):
        if not value.strip().isdigit():
            continue  # not a size: the route's own validation answers
        if name in _SIZE_PARAMS and int(value) > largest:
            return f"{name}: at most {largest} pixels"
        if name == "cover_scale" and int(value) > limits.max_cover_scale:
            return f"cover_scale: at most {limits.max_cover_scale}"
    return None


class Guard:
    """ASGI middleware applying :class:`ServeLimits` before the app (see the module doc)."""

    def __init__(self, app: ASGIApp, limits: ServeLimits):
        self.app, self.limits = app, limits
        self.tile_buckets = TokenBuckets(limits.tile_rate, limits.tile_burst)
        self._renders: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.refusal(scope)
        has_body = _has_body(scope)
        if refusal is not None:
            return await send_error(send, *refusal, close=has_body)
        if has_body:
            body = await self._read_body(receive, send)
            if body is None:
                return None
            receive = _replay(body, receive)
        if scope["path"].startswith("/tiler/") and self.limits.max_renders > 0:
            async with self._render_slots():
                return await self.app(scope, receive, send)
        return await self.app(scope, receive, send)

    def _render_slots(self) -> asyncio.Semaphore:
        """The semaphore of tiler requests, one per event loop (a test client may run
        several loops one after the other)."""
        loop = asyncio.get_running_loop()
        if self._renders is None or self._renders[0] is not loop:
            self._renders = (loop, asyncio.Semaphore(self.limits.max_renders))
        return self._renders[1]

    def refusal(self, scope: Scope) -> tuple | None:
        """(status, code, description[, headers]) refusing the request, or None."""
        limits = self.limits
        path, query = scope["path"], scope.get("query_string", b"")
        if len(path) > limits.max_path or len(scope.get("raw_path") or b"") > limits.max_path:
            return 414, "URITooLong", f"the path is longer than {limits.max_path} characters"
        if len(query) > limits.max_query:
            return 414, "URITooLong", f"the query is longer than {limits.max_query} bytes"
        if "\x00" in path or b"\x00" in query or b"%00" in query:
            return 400, "InvalidParameterValue", "NUL byte in the path or query"
        if not path.startswith("/tiler/"):
            return None
        if limits.tile_rate > 0:
            wait = self.tile_buckets.take((scope.get("client") or ("?",))[0])
            if wait:
                retry = {"Retry-After": max(1, round(wait + 0.5))}
                return 429, "TooManyRequests", "tile request rate exceeded", retry
        too_large = image_size_error(path, query.decode("latin-1"), limits)
        if too_large:
            return 400, "InvalidParameterValue", too_large
        return None

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole request body, or None after answering 408 or 413."""
        limit = self.limits.max_body
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.limits.timeout_body):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        description = f"the body exceeds {limit} bytes"
                        await send_error(send, 413, "PayloadTooLarge", description, close=True)
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body"):
                        return b"".join(chunks)
        except TimeoutError:
            await send_error(send, 408, "RequestTimeout", "the body took too long", close=True)
            return None


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    if b"transfer-encoding" in headers:
        return True
    return headers.get(b"content-length", b"0").strip() not in (b"", b"0")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` once, then what the client sends (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class HeaderDeadline:
    """Mixin for uvicorn's HTTP protocols: close a connection that has no request in progress
    ``timeout_header`` seconds after it opened or after its last response (uvicorn's
    keep-alive timer only starts after a response, and stops at the first byte received)."""

    timeout_header: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_deadline()

    def connection_lost(self, exc) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.timeout_header, self._on_deadline)

    def _on_deadline(self) -> None:
        cycle = self.cycle
        if (cycle is None or cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def protocol_class(timeout_header: float) -> type:
    """uvicorn's HTTP/1.1 protocol (httptools when installed, else h11) with the request head
    deadline of :class:`HeaderDeadline`; pass it as ``uvicorn.Config(http=...)``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base
    return type(
        Base.__name__ + "WithHeaderDeadline",
        (HeaderDeadline, Base),
        {"timeout_header": timeout_header},
    )
