"""The HTTP face under hostile and broken input, over a real server on loopback (raw sockets where a client
library would refuse to misbehave): limits before the body, timeouts, many clients, bad numbers, paging."""

import asyncio
import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from scenario import one_counter

from gateway.domain import pipeline
from gateway.faces.api import ApiServer
from gateway.metrics import Metrics
from gateway.settings import ApiSettings

READ, WRITE = "read-token", "write-token"
HEADER_TIMEOUT_S, BODY_TIMEOUT_S = 1.0, 2.0


def _server(world, **settings):
    server = ApiServer(ApiSettings(port=0, header_timeout_s=HEADER_TIMEOUT_S, body_timeout_s=BODY_TIMEOUT_S,
                                   **settings), world.store, world.rules, Metrics(world.store), read_token=READ,
                       write_token=WRITE, ready=lambda: {"broker": True})
    server.start()
    return server


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, "P-A") as world:
        yield world


@pytest.fixture
def port(world):
    server = _server(world)
    yield server.port
    server.stop()


def ask(port, method, path, *, headers=(), body=None, timeout=5.0):
    """(status, headers, parsed body) through http.client, which sends any header value it is given."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(method, path)
        for name, value in headers:
            connection.putheader(name, value)
        if body is not None and not {name.lower() for name, _ in headers} & {"content-length", "transfer-encoding"}:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        raw = answer.read()
        return answer.status, dict(answer.getheaders()), json.loads(raw) if raw else None
    finally:
        connection.close()


def _peak_rss_kib():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])


def _closed_by_server(sock, within_s):
    """True when the server closes `sock` (EOF or reset) within `within_s`."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize(("length", "status"), [("-1", 400), ("abc", 400), ("1e9", 400),
                                                ("99999999999999999999999999", 400), ("200000000", 401)])
def test_a_bad_or_huge_length_without_a_token_is_answered_before_any_body_is_sent(port, length, status):
    started = time.monotonic()
    answer = ask(port, "POST", "/api/v1/tickets", headers=[("Content-Length", length)], timeout=3)
    assert answer[0] == status and time.monotonic() - started < 2
    if status == 401:
        assert answer[1]["www-authenticate"] == "Bearer" and "Bearer" in answer[2]["error"]


def test_a_body_without_a_token_does_not_grow_the_server(port):
    """The old server read `Content-Length: -1` to the end of the stream: 64 MiB here went into its memory."""
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS of this process, which runs the server
    before = _peak_rss_kib()
    for length in ("-1", "67108864"):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"POST /api/v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
            chunk, sent, deadline = b"x" * 65536, 0, time.monotonic() + 5
            try:
                while sent < 64 * 1024 * 1024 and time.monotonic() < deadline:
                    sent += sock.send(chunk)
            except OSError:  # the server answered and closed: what we want
                pass
            sock.settimeout(3)
            assert sock.recv(100).split(b" ")[1] in (b"400", b"401")
            assert sent < 32 * 1024 * 1024
    assert _peak_rss_kib() - before < 16 * 1024


def test_bodies_over_the_cap_are_refused_chunked_or_not(port):
    auth = ("Authorization", f"Bearer {WRITE}")
    status, _, body = ask(port, "POST", "/api/v1/tickets", headers=[auth, ("Content-Length", str(64 * 1024 + 1))])
    assert status == 413 and "65536" in body["error"]
    chunked = [auth, ("Transfer-Encoding", "chunked")]
    big = b"".join(b"4000\r\n" + b" " * 0x4000 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"  # 128 KiB of spaces
    status, _, body = ask(port, "POST", "/api/v1/tickets", headers=chunked, body=big)
    assert status == 413 and "over 65536" in body["error"]
    status, _, body = ask(port, "POST", "/api/v1/tickets", headers=[auth])
    assert status == 411 and "Content-Length" in body["error"]
    small = b'{"number": "T1"}'
    status, _, body = ask(port, "POST", "/api/v1/tickets", headers=chunked,
                          body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
    assert status == 422 and "ticket_invalid" in body["error"]  # read, parsed, refused for its content
    status, _, body = ask(port, "PUT", "/api/v1/catalog", headers=[auth, ("Content-Length", str(5 * 2**20))])
    assert status == 413


def test_many_clients_at_once_are_all_answered(port):
    """The old server (backlog 5) left 87 of 200 /livez requests unanswered for 40 s."""
    async def one(path, token=None):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode())
        answer = await reader.read()
        writer.close()
        return int(answer.split(b" ")[1])

    async def crowd(path, token=None):
        return await asyncio.wait_for(asyncio.gather(*(one(path, token) for _ in range(300))), 20)

    started = time.monotonic()
    assert asyncio.run(crowd("/livez")) == [200] * 300  # /livez answers from the loop: never busy
    devices = asyncio.run(crowd("/api/v1/devices", READ))
    assert set(devices) <= {200, 503} and devices.count(200) >= 64
    assert time.monotonic() - started < 20


def test_when_every_slot_is_taken_the_answer_is_a_quick_503(world):
    server = _server(world, max_in_flight=1)
    entered, release = threading.Event(), threading.Event()
    original = world.store.reading

    def slow_reading():
        entered.set()
        release.wait(5)
        return original()

    world.store.reading = slow_reading
    try:
        first = threading.Thread(target=ask, args=(server.port, "GET", "/api/v1/devices"),
                                 kwargs={"headers": [("Authorization", f"Bearer {READ}")]})
        first.start()
        assert entered.wait(5)
        started = time.monotonic()
        status, headers, body = ask(server.port, "GET", "/api/v1/devices",
                                    headers=[("Authorization", f"Bearer {READ}")])
        assert (status, headers["retry-after"]) == (503, "1") and "busy" in body["error"]
        assert time.monotonic() - started < 1
        assert ask(server.port, "GET", "/livez")[0] == 200
        release.set()
        first.join(5)
    finally:
        release.set()
        world.store.reading = original
        server.stop()


def test_half_sent_requests_are_closed_after_the_timeout_and_hold_nobody_up(port):
    """The old server gave each of 300 half-sent connections a thread for as long as the client liked."""
    threads_before = threading.active_count()
    heads = []
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /api/v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bea")
        heads.append(sock)
    with socket.create_connection(("127.0.0.1", port)) as body_stalled:
        body_stalled.sendall(f"POST /api/v1/tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITE}\r\n"
                             "Content-Length: 100\r\n\r\n{\"number\"".encode())
        started = time.monotonic()
        assert ask(port, "GET", "/api/v1/devices", headers=[("Authorization", f"Bearer {READ}")])[0] == 200
        assert time.monotonic() - started < 1
        assert threading.active_count() - threads_before < 10
        body_stalled.settimeout(BODY_TIMEOUT_S + 2)
        assert body_stalled.recv(100).startswith(b"HTTP/1.1 408")
    deadline = HEADER_TIMEOUT_S + 2
    assert all(_closed_by_server(sock, deadline) for sock in heads)
    for sock in heads:
        sock.close()


def test_bad_numbers_and_unknown_routes_answer_4xx_with_a_json_error(port, world):
    read = [("Authorization", f"Bearer {READ}")]
    write = [("Authorization", f"Bearer {WRITE}"), ("Content-Type", "application/json")]
    huge = "9" * 26
    for method, path in (("GET", f"/api/v1/alerts/{huge}"), ("GET", f"/api/v1/alerts/{huge}/evidence"),
                         ("GET", "/api/v1/alerts/9223372036854775808")):
        status, _, body = ask(port, method, path, headers=read)
        assert status == 404 and "error" in body, path
    status, _, body = ask(port, "POST", f"/api/v1/alerts/{huge}", headers=write, body=b'{"state": "resolved"}')
    assert status == 404 and "error" in body
    for query in ("limit=-1", "limit=0", "limit=1001", "limit=abc", f"limit={huge}", "limit=%EF%BC%91"):
        for path in ("/api/v1/alerts", "/api/v1/deadletters", "/api/v1/quarantine"):
            status, _, body = ask(port, "GET", f"{path}?{query}", headers=read)
            assert status == 400 and "limit must be a whole number" in body["error"], (path, query)
    assert ask(port, "GET", "/api/v1/quarantine?limit=101", headers=read)[0] == 400
    for before in ("0", "-3", "x", huge):
        assert ask(port, "GET", f"/api/v1/quarantine?before={before}", headers=read)[0] == 400
    assert ask(port, "GET", "/api/v1/rates?day=2026-02-30", headers=read)[0] == 422
    assert ask(port, "GET", f"/api/v1/rates?window_h={huge}", headers=read)[0] == 422
    ticket = {"number": "T9", "terminal": "A1", "time": 10**30, "lines": [{"list_code": "XA01", "quantity": 1}]}
    status, _, body = ask(port, "POST", "/api/v1/tickets", headers=write, body=json.dumps(ticket).encode())
    assert status == 422 and "time must be from 2000" in body["error"]
    deep = b"[" * 100_000 + b"]" * 100_000
    status, _, body = ask(port, "POST", "/api/v1/deadletters/requeue", headers=write, body=deep)
    assert status in (400, 422) and "error" in body
    status, _, body = ask(port, "GET", "/api/v1/nothing", headers=read)
    assert status == 404 and "no endpoint" in body["error"]
    status, headers, body = ask(port, "DELETE", "/api/v1/alerts/1", headers=write)
    assert status == 405 and "POST" in headers["allow"] and "DELETE not allowed" in body["error"]


def test_quarantine_pages_with_a_cursor_and_a_byte_cap(port, world):
    sizes = [60_000] * 30 + [200_000, 10]
    pipeline.commit(world.store, world.rules, rejected=[
        pipeline.Rejected(f"tc/v1/dev-{index}/ev", f"dev-{index}", "malformed_cbor", "not CBOR",
                          bytes([index]) * size, 1_795_309_200_000 + index) for index, size in enumerate(sizes)])
    read = [("Authorization", f"Bearer {READ}")]
    seen, before, pages = [], None, 0
    while True:
        path = "/api/v1/quarantine?limit=100" + (f"&before={before}" if before else "")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path, headers=dict(read))
        raw = connection.getresponse().read()
        connection.close()
        assert len(raw) <= 1024 * 1024
        page = json.loads(raw)
        pages += 1
        assert page["reasons"] == {"malformed_cbor": {"messages": 32, "times": 32, "bytes": 2000010,
                                                  "dropped_messages": 0, "dropped_times": 0}}
        seen += page["messages"]
        before = page["next_before"]
        if before is None:
            assert page["truncated"] is False
            break
        assert page["truncated"] is True and before == page["messages"][-1]["id"]
    assert [row["id"] for row in seen] == sorted({row["id"] for row in seen}, reverse=True) and len(seen) == 32
    assert pages >= 4
    for row in seen:
        shown = min(row["message_bytes"], 64 * 1024)
        assert len(row["message_hex"]) == 2 * shown and row["message_truncated"] == (row["message_bytes"] > shown)
        assert {"id", "received_ms", "last_ms", "times", "topic", "device", "reason", "detail"} <= set(row)
    assert any(row["message_truncated"] for row in seen)
    status, _, small = ask(port, "GET", "/api/v1/quarantine?limit=2", headers=read)
    assert [row["message_bytes"] for row in small["messages"]] == [10, 200_000] and small["truncated"] is False
    assert small["next_before"] == small["messages"][-1]["id"]


def test_what_a_second_attack_found_answers_4xx_not_500(port):
    """Found by attacking the first version: dashboard paths the file system refuses, dates and ids beyond what
    the store holds, catalog values it cannot hold, tickets with a lone surrogate."""
    read = [("Authorization", f"Bearer {READ}")]
    write = [("Authorization", f"Bearer {WRITE}"), ("Content-Type", "application/json")]
    for path in ("/dashboard/%00", "/dashboard/" + "a" * 300):
        assert ask(port, "GET", path)[0] == 404, path
    for path in ("/api/v1/rates?day=9999-12-31", "/api/v1/rates/series?day=9999-12-31"):
        assert ask(port, "GET", path, headers=read)[0] == 422, path
    status, _, body = ask(port, "POST", "/api/v1/deadletters/requeue", headers=write,
                          body=b'{"ids": [18446744073709551616]}')
    assert status == 422 and "error" in body
    catalog_write = [("Authorization", f"Bearer {WRITE}"), ("Content-Type", "text/csv")]
    for row in ("8123456,XA01,Aspirin,99999999999999999999999,1", "8123456,XA01,Asp\x00irin,20,1"):
        status, _, body = ask(port, "PUT", "/api/v1/catalog", headers=catalog_write,
                              body=f"pid,list_code,name,pack_size,code_required\n{row}\n".encode())
        assert status in (400, 422) and "error" in body, row
    ticket = b'{"number": "N\\ud800", "terminal": "A1", "time": "2026-01-01T10:00:00+08:00", ' \
             b'"lines": [{"list_code": "XA01", "quantity": 1}]}'
    status, _, body = ask(port, "POST", "/api/v1/tickets", headers=write, body=ticket)
    assert status == 422 and "UTF-8" in body["error"]
