"""Thresholds and windows of the supervision rules: the `[rules]` table of the config file.

Where no number is published (docs/platform.md: the counterfeit window, the
margin for sales above purchases) the default is ours and documented as such.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Rules"]


@dataclass(frozen=True, kw_only=True)
class Rules:
    timezone: str = "Asia/Shanghai"
    """IANA zone whose calendar days the daily rates follow (hour buckets; zones with whole-hour offsets)."""
    rolling_window_h: int = 24
    """Length of the rolling window of the rates, in hours (whole hour buckets, the current one included)."""
    match_window_s: int = 600
    """A scan without a ticket number matches a ticket of its terminal settled at most this long after it."""
    match_after_ticket_s: int = 10
    """... or settled at most this long before it (clock skew between POS and scanner): a box scanned after
    a settlement belongs to the next customer, unless it carries the ticket's number."""
    unscanned_after_s: int = 900
    """A ticket line that requires a code and has no scan this long after the ticket raises unscanned_sale."""
    distant_window_s: int = 86400
    """One code sold in two regions within this time raises distant_sale (counterfeit suspicion). Ours."""
    stock_margin: int = 0
    """sales_above_purchases is raised when packs sold exceed packs taken in by more than this. Ours."""
    offline_after_s: int = 300
    """A device offline (Last Will) or silent this long raises device_offline."""
    backlog_alert: int = 100
    """A device status with more unacked events than this raises backlog_high."""
    mac_failure_burst: int = 5
    """This many bad-MAC messages from one device within mac_failure_window_s raise mac_failures."""
    mac_failure_window_s: int = 600
    seq_window: int = 100_000
    """An event or status whose seq lies more than this beyond the device's acknowledged seq is refused
    (seq_out_of_window): no journal holds that many unacknowledged events, and accepting it would show that many
    seqs as missing for ever (so a device's missing seqs stay below it). After restoring an old database backup,
    raise it until the devices' resends are in."""
    sweep_interval_s: int = 10
    """How often the time-based rules (offline, unscanned lines) run."""
