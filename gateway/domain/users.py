"""Named API users with roles: the `users` table (its one owner) and the token check the HTTP face asks.

A user has a name, a role and one token. The token is shown once, when the user is added; the database keeps
only its SHA-256 (a token is 32 random bytes, so a plain hash cannot be searched backwards). Roles nest:
`read` looks, `acknowledge` also moves alerts, `admin` also changes things (tickets, catalog, dead letters) and
sends device commands. Every acknowledgement and every device command records the user's name.

The two shared tokens of earlier versions (api.token / <data_dir>/api-token, api.write_token /
<data_dir>/api-write-token) keep working as the legacy users `read-token` (role read) and `write-token` (role
admin); `trace-gateway users revoke write-token` switches one off for good. A revoked name is never given out
again, so a name in the audit log always means one holder.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from http import HTTPStatus

from gateway.faces._http_face import HttpError
from gateway.store.base import Store, Tx

__all__ = ["ROLES", "LEGACY_NAMES", "User", "UserError", "add_user", "revoke_user", "list_users", "TokenBook",
           "token_digest"]

ROLES = ("read", "acknowledge", "admin")
"""From least to most: each role may do what the roles before it may."""
LEGACY_NAMES = {"read-token": "read", "write-token": "admin"}
"""The shared tokens of earlier versions, as users: name -> role."""
_NEEDS = {"read": 0, "acknowledge": 1, "write": 2, "admin": 2}
"""An endpoint's access -> the least role rank that may call it (`write`: the name earlier versions used)."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_REFRESH_S = 5.0
_MISS_REFRESH_S = 0.5
_MISS_WAIT_S = 2.0

log = logging.getLogger("gateway.api")


class UserError(ValueError):
    """A user that cannot be added or revoked, with the reason."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_ms: int
    revoked_ms: int
    """0 while the token works."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def add_user(tx: Tx, name: str, role: str, *, now_ms: int) -> str:
    """Add a user; its new token (shown once: only its hash is kept)."""
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"user name {name!r}: 1-64 of letters, digits and . _ @ - (starting with a letter or digit)")
    if name in LEGACY_NAMES:
        raise UserError(f"{name!r} is the legacy shared token's name; choose another")
    if role not in ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
    existing = tx.one("SELECT revoked_ms FROM users WHERE name = ?", (name,))
    if existing is not None:
        how = "was revoked (names are not reused, so the audit log stays unambiguous)" if existing[0] else "exists"
        raise UserError(f"user {name!r} {how}; choose another name")
    token = "tc_" + secrets.token_urlsafe(32)
    tx.execute("INSERT INTO users (name, role, token_hash, created_ms) VALUES (?, ?, ?, ?)",
               (name, role, token_digest(token), now_ms))
    return token


def revoke_user(tx: Tx, name: str, *, now_ms: int) -> None:
    """Switch a user's token off for good (a legacy name too: its shared token stops working)."""
    row = tx.one("SELECT revoked_ms FROM users WHERE name = ?", (name,))
    if row is None and name in LEGACY_NAMES:
        tx.execute("INSERT INTO users (name, role, token_hash, created_ms, revoked_ms) VALUES (?, ?, ?, ?, ?)",
                   (name, LEGACY_NAMES[name], token_digest(secrets.token_hex(32)), now_ms, now_ms))
        return
    if row is None:
        raise UserError(f"no user {name!r} (see trace-gateway users list)")
    if row[0]:
        raise UserError(f"user {name!r} is already revoked")
    tx.execute("UPDATE users SET revoked_ms = ? WHERE name = ?", (now_ms, name))


def list_users(tx: Tx) -> list[User]:
    """Every user ever added, revoked ones too, by name."""
    rows = tx.all("SELECT name, role, created_ms, revoked_ms FROM users ORDER BY name")
    return [User(str(name), str(role), int(created), int(revoked)) for name, role, created, revoked in rows]


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
        self._legacy = {token_digest(token): name for name, token in legacy.items() if token}
        self._users: dict[bytes, tuple[str, str]] = {}
        self._revoked: set[str] = set()
        self._loaded = 0.0
        self._refreshing: asyncio.Future[None] | None = None
        self._load()

    def _load(self) -> None:
        with self._store.reading() as tx:
            rows = tx.all("SELECT name, role, token_hash, revoked_ms FROM users")
        self._users = {bytes(digest): (str(name), str(role)) for name, role, digest, revoked in rows if not revoked}
        self._revoked = {str(name) for name, _, _, revoked in rows if revoked}
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
        digest = token_digest(token.strip())
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
        if ROLES.index(role) < _NEEDS[access]:
            needed = ROLES[_NEEDS[access]]
            raise HttpError(HTTPStatus.FORBIDDEN, f"user {name} (role {role}) may not do this: it needs the role "
                            f"{needed}, e.g. the write token or a user added with --role {needed}")
        return found

    def _holder(self, digest: bytes) -> tuple[str, str] | None:
        found = self._users.get(digest)
        legacy = self._legacy.get(digest)
        if found is None and legacy is not None and legacy not in self._revoked:
            found = (legacy, LEGACY_NAMES[legacy])
        return found
