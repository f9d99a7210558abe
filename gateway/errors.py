"""The one root of the errors the gateway raises on purpose, and what kind of refusal each is.

Every module raises its own subclass with a message that names the input, what was expected and what came;
the faces translate them once each: the CLI into one line and an exit status (gateway/faces/cli.py), the HTTP
API into a status and `{"error": ...}` (gateway/faces/_http_face.py), MQTT ingest into a counted, quarantined
rejection (gateway/ingest/loop.py).
"""

from __future__ import annotations

__all__ = ["GatewayError", "KINDS"]

KINDS = ("invalid", "malformed", "missing", "conflict", "unusable")
"""invalid: a value that cannot be taken; malformed: a request that does not say what it means; missing: it
names something that does not exist; conflict: it contradicts what is stored; unusable: the gateway's own setup
(config, database) is wrong, nothing a client can fix."""


class GatewayError(Exception):
    """An error the gateway raises on purpose; `kind` (one of KINDS) says what a face answers."""

    kind: str = "invalid"
