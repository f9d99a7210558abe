"""Two gateway instances on one shared subscription and one PostgreSQL database, one killed with -9 half way:
every event stored once, acknowledged, forwarded once, and a code sold twice is caught even when its two sales
went to different instances. The broker binds client ids to user names, so each instance has its own user."""

import os
import threading
import time

import pytest
from stores import fresh_database

from gateway.wire.protocol import Verdict
from harness.broker import Broker, add_service_user
from harness.gateway_process import GatewayProcess, forward_toml
from harness.pg_cluster import PgCluster
from harness.traffic import AckWatcher, publish_all, signed_stream
from system.fixtures import wait_until

EVENTS = 20_000
DEVICES = 50
INSTITUTIONS = {"P44030000001": "第一药房", "P44030000002": "第二药房"}
CATALOG = b"pid,list_code,name,pack_size,code_required\n8123456,XA01,Amoxicillin,24,1\n"
RESOLD = {number: number - DEVICES - 1 - number // 100 % 2 for number in range(100, EVENTS, 100)}
"""Event number -> the earlier event whose box it sells again about 50 messages later, on the next device (the
other institution) or the one after (the same institution)."""


LOGINS = {"gw-a": "secret-a", "gw-b": "secret-b", "bench-pub": "secret-pub", "bench-acks": "secret-acks"}
"""One broker user per client: each instance (its user name is its client id), the publisher, the ack watcher."""


@pytest.fixture
def broker(tmp_path):
    """Mosquitto with users, as shipped: each client's id is its user name."""
    for user, password in LOGINS.items():
        add_service_user(tmp_path / "passwd", tmp_path / "acl", user, password)
    with Broker(tmp_path / "broker", password_file=tmp_path / "passwd", acl_file=tmp_path / "acl") as running:
        yield running


@pytest.fixture
def database():
    """A fresh database: on the session's cluster with --store postgresql, else on a cluster of this test's own."""
    url = fresh_database()
    if url:
        yield url
        return
    with PgCluster(durable=False) as cluster:
        yield cluster.create_database("shared")


def _code(number):
    return f"8123456{RESOLD.get(number, number):013d}"


def test_two_instances_share_the_load_and_a_kill_9_loses_and_doubles_nothing(tmp_path, broker, platform, database):
    keys = {f"bench-{number:04d}": os.urandom(32) for number in range(DEVICES)}
    stream = signed_stream(DEVICES, EVENTS, keys, code_of=_code)
    forward = forward_toml(platform.url, INSTITUTIONS, batch_size=50, concurrency=2, timeout_ms=3000, rate_per_s=0,
                           sale_hold_s=0, backoff_base_ms=200, backoff_cap_ms=2000)
    instances = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        instances.append(GatewayProcess(tmp_path / name, broker, set_clocks=False, shared_group="gateways",
                                        database=database, mqtt_user=f"gw-{name}",
                                        mqtt_password=LOGINS[f"gw-{name}"], extra_toml=forward))
    first, second = instances
    institutions = list(INSTITUTIONS)
    for number, (device, key) in enumerate(keys.items()):
        first.register(device, key, terminal=f"T{number:02d}", institution=institutions[number % 2])
    try:
        for instance in instances:
            instance.start()
        assert first.api("PUT", "/api/v1/catalog", CATALOG, write=True)[0] == 200
        expected = {device: EVENTS // DEVICES for device in keys}
        watcher = AckWatcher(broker.port, expected, login=("bench-acks", LOGINS["bench-acks"]))
        publisher = threading.Thread(target=publish_all, args=(broker.port, stream),
                                     kwargs={"login": ("bench-pub", LOGINS["bench-pub"])})
        publisher.start()
        assert wait_until(lambda: sum(watcher.acked.values()) >= EVENTS // 2, 300, step=0.05)
        second.stop(kill=True)  # half way, with batches in flight
        time.sleep(2)
        second.start()  # as systemd's Restart=on-failure would: its broker session hands back what it held
        publisher.join(300)
        assert watcher.done.wait(300), f"acked {sum(watcher.acked.values())} of {EVENTS}"
        watcher.close()

        def settled():
            rows = first.api("GET", "/api/v1/outbox")[1]["rows"]
            return rows["done"] == EVENTS and rows["pending"] == rows["sending"] == 0

        assert wait_until(settled, 300, step=1), first.api("GET", "/api/v1/outbox")
        with first.store() as store:
            assert store.query("SELECT count(*) FROM events") == [(EVENTS,)]
            assert store.query("SELECT count(*) FROM (SELECT DISTINCT device, seq FROM events) AS stored") == [
                (EVENTS,)]
            by_instance = dict(store.query("SELECT instance, count(*) FROM events GROUP BY instance"))
            assert set(by_instance) == {"gw-a", "gw-b"} and min(by_instance.values()) > EVENTS // 10, by_instance
            resold = {number: (_code(number), stream[number][0]) for number in RESOLD}
            split = 0
            for code, _ in resold.values():
                rows = store.query("SELECT verdict, instance FROM events WHERE code = ? ORDER BY id", (code,))
                assert sorted(verdict for verdict, _ in rows) == [Verdict.OK, Verdict.DUPLICATE_SALE], (code, rows)
                split += len({instance for _, instance in rows}) == 2
            alerted = dict(store.query("SELECT subject, type FROM alerts WHERE type IN "
                                       "('repeat_sale', 'cross_institution_sale')"))
            assert {code for code, _ in resold.values()} == set(alerted)
            assert set(alerted.values()) == {"repeat_sale", "cross_institution_sale"}
        assert split > len(RESOLD) // 10, f"only {split} of {len(RESOLD)} resales went to two instances"
        sim = platform.counts()
        assert sim["accepted_rows"] == EVENTS == sim["distinct_bchno"] and sim.get("doubles", 0) == 0
        print(f"stored by instance: {by_instance}; resales split over both instances: {split} of {len(RESOLD)}; "
              f"platform: {sim}")
    finally:
        for instance in instances:
            instance.stop()
