"""Who a bearer token belongs to, and whether its role may call an endpoint: the HTTP face's side of users."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from http import HTTPStatus

from gateway.domain import users
from gateway.faces._http_face import HttpError
from gateway.store.base import Store

__all__ = ["TokenBook"]

_NEEDS = {"read": 0, "acknowledge": 1, "write": 2, "admin": 2}
"""An endpoint's access -> the least role rank that may call it (`write`: the name earlier versions used)."""
_REFRESH_S = 5.0
_MISS_REFRESH_S = 0.5
_MISS_WAIT_S = 2.0

log = logging.getLogger("gateway.api")


class TokenBook:
    """Who a bearer token belongs to, for the HTTP face: the users table and the legacy shared tokens.

    The table is read when the book is made, then again in the thread pool when a request finds the copy older
    than 5 s; requests meanwhile use the copy they have, so a slow database never holds up a known token. An
    unknown token (perhaps of a user just added) waits up to 2 s for a new read, made once the copy is 0.5 s
    old: a new user's token works at once, and unknown tokens cost at most two reads a second. A revocation
    counts within about 5 s."""

    def __init__(self, store: Store, pool: Executor, *, legacy: Mapping[str, str]) -> None:
        """`legacy`: legacy user name -> its token (empty tokens are left out)."""
        self._store = store
        self._pool = pool
        self._legacy = {users.token_digest(token): name for name, token in legacy.items() if token}
        self._users: dict[bytes, tuple[str, str]] = {}
        self._revoked: set[str] = set()
        self._loaded = 0.0
        self._refreshing: asyncio.Future[None] | None = None
        self._load()

    def _load(self) -> None:
        with self._store.reading() as tx:
            self._users, self._revoked = users.token_holders(tx)
        self._loaded = time.monotonic()

    async def _reread(self, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        await asyncio.get_running_loop().run_in_executor(self._pool, self._refresh)

    def _refresh(self) -> None:
        try:
            self._load()
        except Exception:  # the database is away: keep the copy, try again at the next request after 5 s
            log.exception("reading the users table failed; the last copy stays in use")
            self._loaded = time.monotonic()

    async def authenticate(self, header: str, access: str) -> tuple[str, str]:
        """(name, role) of the token in an `Authorization: Bearer` header if its role allows `access`;
        HttpError 401 (no or unknown token) or 403 (a role below what `access` needs) otherwise."""
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token:
            raise HttpError(HTTPStatus.UNAUTHORIZED, "Authorization: Bearer <token> required", headers=challenge)
        digest = users.token_digest(token.strip())
        found = self._holder(digest)
        age_s = time.monotonic() - self._loaded
        if (self._refreshing is None or self._refreshing.done()) and (found is None or age_s >= _REFRESH_S):
            delay_s = _MISS_REFRESH_S - age_s if found is None else 0.0
            self._refreshing = asyncio.ensure_future(self._reread(delay_s))
        if found is None and self._refreshing is not None and not self._refreshing.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._refreshing), _MISS_WAIT_S)
            except TimeoutError:
                pass
            found = self._holder(digest)
        if found is None:
            raise HttpError(HTTPStatus.UNAUTHORIZED, "unknown token, or revoked", headers=challenge)
        name, role = found
        if users.ROLES.index(role) < _NEEDS[access]:
            needed = users.ROLES[_NEEDS[access]]
            raise HttpError(HTTPStatus.FORBIDDEN, f"user {name} (role {role}) may not do this: it needs the role "
                            f"{needed}, e.g. the write token or a user added with --role {needed}")
        return found

    def _holder(self, digest: bytes) -> tuple[str, str] | None:
        found = self._users.get(digest)
        legacy = self._legacy.get(digest)
        if found is None and legacy is not None and legacy not in self._revoked:
            found = (legacy, users.LEGACY_NAMES[legacy])
        return found
