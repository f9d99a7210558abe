"""The HTTP face of the API: every limit is enforced before a byte of body is read, and every refusal is JSON.

For each request, in this order:

1. route (Starlette): unknown path 404, known path with another method 405 (with `Allow`);
2. token, from the headers only (gateway/faces/tokens.py): 401 without a known one, 403 when its user's role is below
   what the route needs;
3. the announced body length against the route's cap: a length that is not a plain decimal number 400, a body
   route without `Content-Length` or chunked encoding 411, a length over the cap 413;
4. one of `max_in_flight` slots, or 503 at once (with `Retry-After`) rather than a queue without end;
5. the body, read only up to the cap (chunked bodies too: 413 at the first byte past it) and within
   `body_timeout_s` (408);
6. the handler, in a small thread pool: the store is synchronous and must not block the event loop.

A handler refuses by raising a `GatewayError`: `HttpError` with its own status, or any other with the status
of its kind (STATUS_OF_KIND); that and anything unexpected (500, logged) are turned into `{"error": "..."}` here
and nowhere else. Routes marked `on_loop` (/livez) skip steps 4-6: they answer
from the event loop, so a busy gateway still says it is alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import GatewayError

__all__ = ["HttpError", "STATUS_OF_KIND", "ApiRequest", "Answer", "Endpoint", "Authenticator", "Limits", "build_app",
           "INT64_MAX"]

log = logging.getLogger("gateway.api")

INT64_MAX = 2**63 - 1
"""The largest id a database row can have (SQLite and PostgreSQL bigint)."""
_DECIMAL = re.compile(r"[0-9]{1,19}")


STATUS_OF_KIND = {"invalid": HTTPStatus.UNPROCESSABLE_ENTITY, "malformed": HTTPStatus.BAD_REQUEST,
                  "missing": HTTPStatus.NOT_FOUND, "conflict": HTTPStatus.CONFLICT}
"""The answer to a refusal of each kind (gateway/errors.py); an `unusable` gateway is a 500 like a bug."""


class HttpError(GatewayError):
    """A request refused with `status`; the message is what the client reads in `{"error": ...}`."""

    def __init__(self, status: HTTPStatus, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class ApiRequest:
    """What a handler gets: everything was checked against the limits and the token before."""

    query: Mapping[str, str]
    """Query parameters, the last value of each; an empty one counts as absent."""
    body: bytes
    """The whole body (at most the route's cap); empty for routes without one."""
    path: Mapping[str, int]
    """Whole-number path parameters (`{id:int}`), from 0 to INT64_MAX."""
    url_path: str = ""
    user: str = ""
    """The name of the user whose token the request carried ("" on routes without a token)."""
    role: str = ""


Answer = tuple[int, Any]
"""(status, payload): a payload is JSON-able, or bytes (Prometheus text), or (bytes, content type), or a Response."""


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    method: str
    path: str
    """Starlette path template; `{name:int}` parameters arrive in ApiRequest.path."""
    handler: Callable[[ApiRequest], Answer]
    access: str
    """none, read, acknowledge or admin (write: the same as admin): the least role that may call it."""
    body_cap: int = 0
    """Largest body taken, in bytes; 0: the route takes no body and never reads one."""
    on_loop: bool = False
    """Answer from the event loop, without a slot or a thread (only for handlers that neither block nor wait)."""


class Authenticator(Protocol):
    async def authenticate(self, header: str, access: str) -> tuple[str, str]:
        """(user name, role) for the Authorization header if it may call a route of `access`; HttpError 401 or
        403 otherwise."""
        ...


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_in_flight: int = 64
    """Requests being read or handled at once; one more is answered 503 at once."""
    body_timeout_s: float = 60.0
    """A body must have arrived whole within this (408 otherwise)."""


@dataclass
class _Slots:
    """Requests in hand, counted on the event loop's thread (so no lock)."""

    capacity: int
    taken: int = field(default=0)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.taken >= self.capacity:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, f"busy: {self.taken} requests in hand; try again",
                            headers={"Retry-After": "1"})
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1


def build_app(endpoints: Sequence[Endpoint], tokens: Authenticator, limits: Limits,
              pool: ThreadPoolExecutor) -> Starlette:
    """The ASGI app serving `endpoints` (one Starlette route per path, so 405 lists every method of the path)."""
    slots = _Slots(limits.max_in_flight)
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
    routes = [Route(path, _dispatcher(methods, tokens, limits, slots, pool), methods=list(methods))
              for path, methods in by_path.items()]
    return Starlette(routes=routes, exception_handlers={HTTPException: _routing_refusal})


def _dispatcher(methods: dict[str, Endpoint], tokens: Authenticator, limits: Limits, slots: _Slots,
                pool: ThreadPoolExecutor) -> Callable[[Request], Any]:
    async def dispatch(request: Request) -> Response:
        endpoint = methods.get(request.method) or methods["GET"]  # HEAD, which Starlette adds to GET routes
        try:
            user, role = "", ""
            if endpoint.access != "none":
                user, role = await tokens.authenticate(request.headers.get("authorization", ""), endpoint.access)
            announced = _announced_length(request, endpoint.body_cap)
            path = {name: _path_int(name, value) for name, value in request.path_params.items()
                    if not isinstance(value, str)}
            if endpoint.on_loop:
                return _answer(*endpoint.handler(ApiRequest(_query(request), b"", path, request.url.path)))
            with slots.slot():
                body = await _read_body(request, endpoint.body_cap, announced, limits.body_timeout_s)
                call = ApiRequest(_query(request), body, path, request.url.path, user, role)
                answer = await asyncio.get_running_loop().run_in_executor(pool, endpoint.handler, call)
            return _answer(*answer)
        except HttpError as error:
            return _error(error.status, str(error), error.headers)
        except GatewayError as error:
            if error.kind in STATUS_OF_KIND:
                return _error(STATUS_OF_KIND[error.kind], str(error), {})
            log.exception("%s %s failed", request.method, request.url.path)
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; see the gateway log")
        except Exception:  # a bug answers 500 and is logged; it never takes the server down
            log.exception("%s %s failed", request.method, request.url.path)
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; see the gateway log")

    return dispatch


def _announced_length(request: Request, cap: int) -> int | None:
    """The body length the headers announce (None: chunked); refuses what cannot be taken before reading any."""
    if not cap:
        return 0
    text = request.headers.get("content-length")
    if text is None:
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            return None
        raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a body is required: send Content-Length (or chunked)")
    if not _DECIMAL.fullmatch(text.strip()):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"Content-Length must be a whole number of bytes, got {text[:40]!r}")
    length = int(text)
    if length > cap:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes; this endpoint takes {cap}")
    return length


async def _read_body(request: Request, cap: int, announced: int | None, timeout_s: float) -> bytes:
    if not cap or announced == 0:
        return b""
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                if len(body) + len(chunk) > cap:
                    raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {cap} bytes")
                body += chunk
    except TimeoutError:
        raise HttpError(HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {timeout_s:g} s") from None
    except ClientDisconnect:
        raise HttpError(HTTPStatus.BAD_REQUEST, "the client left before sending its body") from None
    return bytes(body)


def _query(request: Request) -> dict[str, str]:
    return {name: value for name, value in request.query_params.multi_items() if value}


def _path_int(name: str, value: object) -> int:
    if not isinstance(value, int) or value > INT64_MAX:
        raise HttpError(HTTPStatus.NOT_FOUND, f"no item with {name} {str(value)[:40]}: ids are at most {INT64_MAX}")
    return value


async def _routing_refusal(request: Request, error: Exception) -> Response:
    """Starlette's own 404 and 405, as JSON."""
    assert isinstance(error, HTTPException)
    if error.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        message = f"{request.method} not allowed; use {(error.headers or {}).get('Allow', '')}"
    elif error.status_code == HTTPStatus.NOT_FOUND:
        message = f"no endpoint {request.url.path[:200]}; see /openapi.json"
    else:
        message = str(error.detail)
    return _error(HTTPStatus(error.status_code), message, error.headers)


def _error(status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _answer(status, {"error": message}, headers)


def _answer(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    if isinstance(payload, Response):
        return payload
    if isinstance(payload, tuple):
        data, kind = payload
    elif isinstance(payload, bytes):
        data, kind = payload, "text/plain; version=0.0.4; charset=utf-8"
    else:
        data, kind = json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8"
    return Response(data, status_code=int(status), headers=dict(headers or {}), media_type=kind)
