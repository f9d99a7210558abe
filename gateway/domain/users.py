"""Named API users with roles: the `users` table (its one owner) and the token holders the HTTP face
asks about (gateway/faces/tokens.py).

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

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass

from gateway.errors import GatewayError
from gateway.store.base import Tx

__all__ = ["ROLES", "LEGACY_NAMES", "User", "UserError", "add_user", "revoke_user", "list_users", "token_holders",
           "token_digest"]

ROLES = ("read", "acknowledge", "admin")
"""From least to most: each role may do what the roles before it may."""
LEGACY_NAMES = {"read-token": "read", "write-token": "admin"}
"""The shared tokens of earlier versions, as users: name -> role."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class UserError(GatewayError, ValueError):
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


def token_holders(tx: Tx) -> tuple[dict[bytes, tuple[str, str]], set[str]]:
    """(token digest -> (name, role) of each user still holding a token, the names of revoked users)."""
    rows = tx.all("SELECT name, role, token_hash, revoked_ms FROM users")
    holders = {bytes(digest): (str(name), str(role)) for name, role, digest, revoked in rows if not revoked}
    return holders, {str(name) for name, _, _, revoked in rows if revoked}
