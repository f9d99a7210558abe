"""The MQTT topics of the protocol (docs/protocol.md, "Topics"): what the gateway subscribes to, where it
answers, and what a topic names."""

from __future__ import annotations

__all__ = ["TOPICS", "KINDS", "DEVICE_KINDS", "route", "ack", "command", "status", "events", "answers", "device_acl"]

TOPICS = ("tc/v1/+/ev", "tc/v1/+/status", "tc/v1/pos/+/ticket", "tc/v1/+/res")
"""Device events, device status (retained), POS tickets (JSON, as the HTTP API takes them), command answers."""

DEVICE_KINDS = ("ev", "status", "res")
"""The kinds of topic `route` names a device by (a POS ticket's names its terminal)."""
KINDS = (*DEVICE_KINDS, "ticket")
"""Every kind `route` returns for a topic of ours."""


def events(device: str) -> str:
    """Where a device publishes its events (one COSE_Mac0, or a CBOR array of them)."""
    return f"tc/v1/{device}/ev"


def status(device: str) -> str:
    """Where a device keeps its retained status map."""
    return f"tc/v1/{device}/status"


def ack(device: str) -> str:
    """Where the gateway acknowledges a device's events."""
    return f"tc/v1/{device}/ack"


def command(device: str) -> str:
    """Where the gateway sends a device its signed commands."""
    return f"tc/v1/{device}/cmd"


def answers(device: str) -> str:
    """Where a device answers the commands it verified."""
    return f"tc/v1/{device}/res"


def device_acl(device: str) -> str:
    """Mosquitto ACL lines confining a device (its user name) to its own topics, in the directions it uses them."""
    writes = (events(device), status(device), answers(device))
    reads = (ack(device), command(device))
    return "".join([f"topic write {topic}\n" for topic in writes] + [f"topic read {topic}\n" for topic in reads])


def route(topic: str) -> tuple[str, str]:
    """(kind, name): ("ev"|"status"|"res", device) or ("ticket", terminal); ("", "") for anything else."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[:2] == ["tc", "v1"] and parts[3] in DEVICE_KINDS and parts[2]:
        return parts[3], parts[2]
    if len(parts) == 5 and parts[:3] == ["tc", "v1", "pos"] and parts[4] == "ticket" and parts[3]:
        return "ticket", parts[3]
    return "", ""
