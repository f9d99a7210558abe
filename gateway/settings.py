"""The settings of each service, one frozen dataclass per table of the config file.

They sit below the services that use them, so loading a config (every CLI command does) imports no MQTT, HTTP
or metrics library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["IngestSettings", "ApiSettings", "ForwardSettings", "DashboardSettings"]


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    client_id: str = "trace-gateway-1"
    """Fixed, so the broker keeps the session (and queues events) while the gateway restarts. With a username it
    is the username (the shipped broker config binds client ids to user names); left out, it takes it."""
    username: str = ""
    """The gateway's broker user, one per instance; empty: anonymous (a broker that binds ids refuses it)."""
    password: str = ""
    shared_group: str = ""
    """When set, subscribe as $share/<group>/... so several gateways split the load."""
    batch_max: int = 500
    """Messages per commit; keep it below the broker's max_inflight_messages (1000 in the shipped config): the
    broker stops sending at its in-flight window until the gateway acknowledges, so a larger batch would wait."""
    batch_wait_ms: int = 20
    """How long a batch waits for more messages after its first."""
    quarantine_max_rows: int = 100_000
    """The quarantine keeps at most this many distinct refused messages (the oldest go first; counts stay)."""
    quarantine_max_bytes: int = 256 * 1024 * 1024
    """... and at most this many bytes of them."""
    set_clocks: bool = True
    """Send a signed time command (id = the gateway's ms clock) to a device whose status says its clock was never
    synced, at most once a minute per device. Off when another tool sends commands with its own ids."""


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    """Address to listen on; 0.0.0.0 for every interface (put TLS in front: a reverse proxy)."""
    port: int = 8080
    token: str = ""
    """Read token; empty: made at first start and kept in <data_dir>/api-token (owner-only)."""
    write_token: str = ""
    """Write token (also reads); empty: made at first start and kept in <data_dir>/api-write-token."""
    backlog: int = 1024
    """Connections the kernel holds for the server before it accepts them."""
    header_timeout_s: float = 10.0
    """A connection must send a whole request head within this of opening (or of its last answer)."""
    body_timeout_s: float = 60.0
    """A body must arrive whole within this; a connection silent this long mid-request is closed."""
    max_in_flight: int = 64
    """Requests read or handled at once (not /livez); more are answered 503 at once."""
    workers: int = 4
    """Threads running the handlers' database work."""


@dataclass(frozen=True, kw_only=True)
class ForwardSettings:
    base_url: str = ""
    """Platform (or regional gateway) base URL, e.g. https://fsi.example.gov.cn; empty: forwarding is off."""
    path: str = "/fsi/api/rsfComIfsService/callService"
    timeout_ms: int = 10000
    verify_tls: bool = True
    ca_file: str = ""
    """PEM bundle to verify the platform with instead of the system's CAs."""
    signer: str = "none"
    """none, or tif (x-tif-* headers from paas_id and paas_token)."""
    paas_id: str = ""
    paas_token: str = ""
    batch_size: int = 20
    """Rows per request; above 1 the batch variants (3501A-3506A) are used."""
    concurrency: int = 2
    rate_per_s: int = 10
    """Requests per second at most; 0: no limit."""
    sale_hold_s: int = 120
    """A ticket line goes up once complete, or once quiet this long (after its ticket's and its last scan's
    receipt); a sale scan tied to no ticket, and a return, wait this long after receipt (see gateway.domain.outbox)."""
    backoff_base_ms: int = 1000
    backoff_cap_ms: int = 300000
    breaker_failures: int = 5
    """Consecutive transport failures that open the circuit breaker."""
    breaker_cooldown_ms: int = 30000
    sale_error_node: str = "selinfoErrDetail"
    """Output node of per-row failures of the sale batch variant (its real name is not published)."""
    sign_in: bool = True
    """Sign in with 9001 and carry its sign_no; false: the platform wants none, or a fixed `sign_no` from
    forward.defaults."""
    sign_in_ttl_s: int = 43200
    """Sign in again when the sign_no is older than this (its lifetime on the platform is not published)."""
    sign_in_refusal: str = "签到|sign_no"
    """Regular expression: a refusal whose message matches it refused the sign_no, not the rows (the platform's
    wording is not published)."""
    defaults: dict[str, str] = field(default_factory=dict)
    """Platform field values used when the data has none (envelope and rows): opter, phar_name, ..."""
    institutions: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per institution code, values over `defaults`: fixmedins_name, mdtrtarea_admvs, insuplc_admdvs, ..."""

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)


@dataclass(frozen=True, kw_only=True)
class DashboardSettings:
    coverage_good: float = 0.98
    """Scan coverage at or above this is green; at or above coverage_warn amber; below it red."""
    coverage_warn: float = 0.90
    valid_scan_good: float = 0.98
    valid_scan_warn: float = 0.90
    upload_good: float = 0.99
    upload_warn: float = 0.95
    duplicate_good: float = 0.0
    """Duplicate-sale rate at or below this is green; at or below duplicate_warn amber; above it red."""
    duplicate_warn: float = 0.01
    consistency_good: float = 0.0
    consistency_warn: float = 0.01
    swap_good: float = 0.0
    """串换率 at or below this is green; at or below swap_warn amber; above it red."""
    swap_warn: float = 0.01
    backlog_warn: int = 100
    """Device backlog above this is highlighted."""
