"""trace-platform-sim: the medical-insurance platform's inventory and sales interfaces, with fault injection.

It takes 3501-3506 and their batch variants (3501A-3506A) as docs/platform.md describes them, and 3507 (delete an
upload): the envelope and every row are checked against gateway/contract/platform_fields.py; a bad envelope gets
`infcode -1`, a bad row a business failure (`retRslt "0"`, or its entry in the batch's error list). What it accepts
it records in its own SQLite file, one row per fixmedins_bchno and upload. A repeated msgid gets the stored answer
of the first time and is not processed again; a bchno accepted before under another msgid is accepted again and
counted as a double (a platform that does not deduplicate, which docs/platform.md says we must not rely on). A 3507
marks the accepted row of its bchno and type withdrawn (refused when there is none).

Sign-in (9001): it answers a `signIn` with a new `sign_no` in `signinoutb`, the only live one of that institution
(an older one dies, as when an operator signs in again). Every other request must carry a live sign_no of its
institution: a missing one (while sign-in is required), an unknown, superseded or expired one is refused with
`infcode -1` before anything is processed, and that answer is what its msgid gets from then on.

What it holds is checked as the platform would see it, not only per msgid: per ticket line (institution,
`rtal_docno`, `med_list_codg`) the quantity its live (not withdrawn) sale rows and return rows add up to
(`sale_totals`, `GET /_sim/lines`), and per code of a whole pack how many live sales less returns name it: a
code accepted again while a live sale of it stands is counted in `code_doubles`. A return naming no live sale row
counts in `returns_unmatched`, a withdrawn sale row that a live return names in `orphaned_returns`.

Faults, from the command line or `POST /_sim/faults` (JSON of the same names):
  --latency-ms N        added before answering
  --error-rate F        answer HTTP 500 without processing
  --timeout-rate F      hang for --hang-ms without processing, then close without an answer
  --drop-rate F         process, then close without an answer (the hard case for idempotency)
  --reject-list-code C  refuse every row of this med_list_codg (per-row rejection)
  --outage START:LEN    from START s after launch, for LEN s, answer 503 without processing
  --paas-token T        require x-tif-* headers signed with this token
  --sign-ttl-s N        a sign_no expires N s after its sign-in (0: at the next sign-in only)
  --require-sign-in     refuse requests without a sign_no (a sign_no given must be live either way)

`POST /_sim/expire-sign-ins` ends every live sign_no at once (the platform's day end).

`GET /_sim/counts` gives accepted rows, live rows, distinct bchno, doubles, code doubles, withdrawn rows, replays
and faults injected; `GET /_sim/lines` the per-line totals; both for tests.
"""

from __future__ import annotations

import argparse
import decimal
import hashlib
import json
import random
import sqlite3
import ssl
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gateway.contract.platform_fields import (
    BATCH_NODE,
    ERROR_NODE,
    INV_DATA_TYPE,
    ROW_NODE,
    SIGN_IN,
    SIGN_IN_NODE,
    SIGN_IN_OUTPUT,
    check_envelope,
    check_row,
    check_sign_in,
)

__all__ = ["Faults", "PlatformSim", "LineTotal", "main"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (msgid TEXT PRIMARY KEY, answer TEXT NOT NULL, received_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS accepted (
    id INTEGER PRIMARY KEY, bchno TEXT NOT NULL, infno TEXT NOT NULL, msgid TEXT NOT NULL, institution TEXT NOT NULL,
    codes TEXT NOT NULL, row TEXT NOT NULL, accepted_ms INTEGER NOT NULL, withdrawn INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS accepted_by_bchno ON accepted (bchno);
CREATE TABLE IF NOT EXISTS held (code TEXT PRIMARY KEY, packs INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sign_ins (sign_no TEXT PRIMARY KEY, institution TEXT NOT NULL, opter_no TEXT NOT NULL,
    signed_ms INTEGER NOT NULL, live INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class LineTotal:
    """What the live rows of one ticket line add up to, as the platform holds them."""

    sold: decimal.Decimal
    """sel_retn_cnt summed over the live 3505 rows of (institution, rtal_docno, med_list_codg)."""
    returned: decimal.Decimal
    """... and over the live 3506 rows."""
    codes: tuple[str, ...]
    """The codes of the live 3505 rows, in order of acceptance."""


@dataclass
class Faults:
    latency_ms: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_ms: int = 5000
    drop_rate: float = 0.0
    reject_list_code: str = ""
    outage_start_s: float = -1.0
    """Seconds after launch (or after the last faults update) when an outage starts; negative: none."""
    outage_s: float = 0.0
    paas_token: str = ""
    sign_in_required: bool = False
    """Refuse a request without a sign_no (one that has a sign_no must have a live one either way)."""
    sign_ttl_s: float = 0.0
    """A sign_no expires this long after its sign-in; 0: only when the institution signs in again."""


class PlatformSim:
    def __init__(self, database: Path, faults: Faults, *, host: str = "127.0.0.1", port: int = 0,
                 seed: int | None = None, tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: (certificate chain, key) PEM files to serve HTTPS."""
        self.faults = faults
        self._faults_since = time.monotonic()
        self._chance = random.Random(seed)
        self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, name="platform-sim", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (if it was started) and close the database; `process` works without serving."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            self._db.close()

    def __enter__(self) -> PlatformSim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, changes: dict[str, Any]) -> None:
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.faults, key):
                    raise ValueError(f"unknown fault {key!r}")
                setattr(self.faults, key, type(getattr(self.faults, key))(value))
            self._faults_since = time.monotonic()

    def _count(self, name: str, by: int = 1) -> None:
        self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                         "value = value + excluded.value", (name, by))

    def counts(self) -> dict[str, int]:
        with self._lock:
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            rows, distinct, live = self._db.execute("SELECT count(*), count(DISTINCT bchno), "
                                                    "coalesce(sum(1 - withdrawn), 0) FROM accepted").fetchone()
            codes = [json.loads(text) for (text,) in self._db.execute("SELECT codes FROM accepted")]
        return {"accepted_rows": rows, "live_rows": live, "distinct_bchno": distinct,
                "codes": sum(len(item) for item in codes), **{name: int(value) for name, value in counters.items()}}

    def accepted_codes(self) -> list[str]:
        """Every code of every row ever accepted (withdrawn ones too), in order."""
        with self._lock:
            return [code for (text,) in self._db.execute("SELECT codes FROM accepted ORDER BY id")
                    for code in json.loads(text)]

    def live_codes(self, infno: str = "3505") -> list[str]:
        """The codes of the rows of `infno` the platform holds now (not withdrawn), in order of acceptance."""
        with self._lock:
            return [code for (text,) in self._db.execute("SELECT codes FROM accepted WHERE infno = ? AND withdrawn = 0 "
                                                         "ORDER BY id", (infno,)) for code in json.loads(text)]

    def sale_totals(self) -> dict[tuple[str, str, str], LineTotal]:
        """(institution, rtal_docno, med_list_codg) -> what its live sale and return rows add up to."""
        with self._lock:
            rows = self._db.execute("SELECT institution, infno, row FROM accepted WHERE withdrawn = 0 "
                                    "AND infno IN ('3505', '3506') ORDER BY id").fetchall()
        sums: dict[tuple[str, str, str], list[Any]] = {}
        for institution, infno, text in rows:
            row = json.loads(text)
            key = (institution, str(row.get("rtal_docno", "")), str(row.get("med_list_codg", "")))
            entry = sums.setdefault(key, [decimal.Decimal(0), decimal.Decimal(0), []])
            entry[0 if infno == "3505" else 1] += decimal.Decimal(str(row.get("sel_retn_cnt", "0")))
            if infno == "3505":
                entry[2] += [item["drug_trac_codg"] for item in row["drugtracinfo"]]
        return {key: LineTotal(sold, returned, tuple(codes)) for key, (sold, returned, codes) in sums.items()}

    def expire_sign_ins(self) -> int:
        """End every live sign_no now (the platform's day end); how many there were."""
        with self._lock:
            return self._db.execute("UPDATE sign_ins SET live = 0 WHERE live = 1").rowcount

    def decide(self) -> str:
        """The fault for the next request: outage, error, timeout, drop, or "" (none)."""
        with self._lock:
            faults = self.faults
            since = time.monotonic() - self._faults_since
            if faults.outage_start_s >= 0 and faults.outage_start_s <= since < faults.outage_start_s + faults.outage_s:
                fault = "outage"
            else:
                draw = self._chance.random()
                fault = ("error" if draw < faults.error_rate else
                         "timeout" if draw < faults.error_rate + faults.timeout_rate else
                         "drop" if draw < faults.error_rate + faults.timeout_rate + faults.drop_rate else "")
            if fault:
                self._count(f"fault_{fault}")
            return fault

    def signature_ok(self, headers: Any) -> bool:
        token = self.faults.paas_token
        if not token:
            return True
        timestamp, nonce = headers.get("x-tif-timestamp", ""), headers.get("x-tif-nonce", "")
        expected = hashlib.sha256(f"{timestamp}{token}{nonce}{timestamp}".encode()).hexdigest()
        return bool(timestamp and nonce) and headers.get("x-tif-signature", "") == expected

    def process(self, body: bytes) -> dict[str, Any]:
        """The answer to one request (stored by msgid; a repeat gets the first answer)."""
        now = time.strftime("%Y%m%d%H%M%S")
        try:
            request = json.loads(body)
        except ValueError as error:
            return _answer(-1, "", now, f"请求不是JSON: {error}")
        if not isinstance(request, dict):
            return _answer(-1, "", now, "请求不是JSON对象")
        msgid = str(request.get("msgid", ""))
        with self._lock:
            self._count("requests")
            stored = self._db.execute("SELECT answer FROM answers WHERE msgid = ?", (msgid,)).fetchone()
            if stored is not None:
                self._count("replays")
                return dict(json.loads(stored[0]))
            answer = self._process(request, msgid, now)
            self._db.execute("INSERT INTO answers (msgid, answer, received_ms) VALUES (?, ?, ?)",
                             (msgid, json.dumps(answer, ensure_ascii=False), int(time.time() * 1000)))
            return answer

    def _process(self, request: dict[str, Any], msgid: str, now: str) -> dict[str, Any]:
        envelope = {key: value for key, value in request.items() if key != "input"}
        problems = check_envelope(envelope)
        if problems:
            self._count("refused_envelope")
            return _answer(-1, msgid, now, "; ".join(problems))
        infno_text = str(request["infno"])
        infno, batch = infno_text[:4], infno_text.endswith("A")
        node = SIGN_IN_NODE if infno == SIGN_IN else BATCH_NODE[infno] if batch else ROW_NODE[infno]
        data = request.get("input", {}).get(node) if isinstance(request.get("input"), dict) else None
        rows = data if batch else [data]
        if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
            self._count("refused_envelope")
            return _answer(-1, msgid, now, f"input.{node} 缺失或格式错误")
        if infno == SIGN_IN:
            return self._sign_in(request, msgid, now)
        refusal = self._sign_refusal(request)
        if refusal:
            self._count("refused_sign_no")
            return _answer(-1, msgid, now, refusal)
        if infno == "3507":
            return self._withdraw(rows[0], msgid, now)
        failures = []
        for row in rows:
            problems = check_row(infno, row)
            if row.get("med_list_codg") == self.faults.reject_list_code and self.faults.reject_list_code:
                problems.append(f"医保目录编码{row['med_list_codg']}不存在")
            if problems:
                failures.append({"fixmedins_bchno": row.get("fixmedins_bchno", ""), "err_msg": "; ".join(problems)})
                self._count("refused_rows")
                continue
            bchno = str(row["fixmedins_bchno"])
            if self._db.execute("SELECT 1 FROM accepted WHERE bchno = ?", (bchno,)).fetchone():
                self._count("doubles")
            codes = [item["drug_trac_codg"] for item in row["drugtracinfo"]]
            if infno == "3506" and not self._db.execute(
                    "SELECT 1 FROM accepted WHERE bchno = ? AND infno = '3505' AND withdrawn = 0",
                    (str(row.get("medins_prod_sel_no", "")),)).fetchone():
                self._count("returns_unmatched")  # names no sale row held here (or one from before this platform)
            self._hold(infno, row, codes, 1)
            self._db.execute("INSERT INTO accepted (bchno, infno, msgid, institution, codes, row, accepted_ms) "
                             "VALUES (?,?,?,?,?,?,?)", (bchno, infno, msgid, str(request["fixmedins_code"]),
                                                        json.dumps(codes), json.dumps(row, ensure_ascii=False),
                                                        int(time.time() * 1000)))
            self._count("accepted_rows_total")
        if batch:
            output: dict[str, Any] = {"result": {"retRslt": "0" if failures else "1",
                                                 "msgRslt": f"{len(failures)}条失败" if failures else "成功"}}
            if failures:
                output[ERROR_NODE[infno]] = failures
            return _answer(0, msgid, now, "", output)
        if failures:
            return _answer(0, msgid, now, "", {"result": {"retRslt": "0", "msgRslt": failures[0]["err_msg"]}})
        return _answer(0, msgid, now, "", {"result": {"retRslt": "1", "msgRslt": "成功"}})


    def _sign_in(self, request: dict[str, Any], msgid: str, now: str) -> dict[str, Any]:
        data = request["input"][SIGN_IN_NODE]
        problems = check_sign_in(data)
        if problems:
            self._count("refused_envelope")
            return _answer(-1, msgid, now, "; ".join(problems))
        institution = str(request["fixmedins_code"])
        self._count("sign_ins")
        number = self._db.execute("SELECT value FROM counters WHERE name = 'sign_ins'").fetchone()[0]
        sign_no = f"SN{institution[-8:]}{now}{number:06d}"[:30]
        self._db.execute("UPDATE sign_ins SET live = 0 WHERE institution = ?", (institution,))
        self._db.execute("INSERT INTO sign_ins (sign_no, institution, opter_no, signed_ms, live) VALUES (?,?,?,?,1)",
                         (sign_no, institution, str(data["opter_no"]), int(time.time() * 1000)))
        signed = time.strftime("%Y-%m-%d %H:%M:%S")
        return _answer(0, msgid, now, "", {SIGN_IN_OUTPUT: {"sign_no": sign_no, "sign_time": signed}})

    def _sign_refusal(self, request: dict[str, Any]) -> str:
        """Why this request's sign_no is not taken, or "" when it is."""
        sign_no = str(request.get("sign_no") or "")
        if not sign_no:
            return "未签到: sign_no 为空 (sign in with 9001 first)" if self.faults.sign_in_required else ""
        found = self._db.execute("SELECT institution, signed_ms, live FROM sign_ins WHERE sign_no = ?",
                                 (sign_no,)).fetchone()
        ttl_ms = self.faults.sign_ttl_s * 1000
        if (found is None or found[0] != str(request.get("fixmedins_code")) or not found[2]
                or (ttl_ms and time.time() * 1000 - found[1] > ttl_ms)):
            return f"签到编号无效或已过期: sign_no {sign_no} (sign in again with 9001)"
        return ""

    def _hold(self, infno: str, row: dict[str, Any], codes: list[str], sign: int) -> None:
        """Track how many live sales less returns name each whole-pack code; `sign` -1 when a row is withdrawn."""
        if infno not in ("3505", "3506") or str(row.get("trdn_flag")) == "1":
            return  # an opened pack's code is in as many split sales as it has units
        step = sign if infno == "3505" else -sign
        for code in codes:
            found = self._db.execute("SELECT packs FROM held WHERE code = ?", (code,)).fetchone()
            packs = int(found[0]) if found else 0
            if step > 0 and packs >= 1:
                self._count("code_doubles")
            self._db.execute("INSERT INTO held (code, packs) VALUES (?, ?) ON CONFLICT (code) DO UPDATE SET "
                             "packs = excluded.packs", (code, packs + step))

    def _withdraw(self, data: dict[str, Any], msgid: str, now: str) -> dict[str, Any]:
        problems = check_row("3507", data)
        if problems:
            self._count("refused_rows")
            return _answer(0, msgid, now, "", {"result": {"retRslt": "0", "msgRslt": "; ".join(problems)}})
        bchno, kind = str(data["fixmedins_bchno"]), str(data["inv_data_type"])
        interfaces = [infno for infno, number in INV_DATA_TYPE.items() if number == kind]
        found = self._db.execute(f"SELECT id, infno, row, codes FROM accepted WHERE bchno = ? AND withdrawn = 0 "
                                 f"AND infno IN ({','.join('?' * len(interfaces))}) ORDER BY id DESC LIMIT 1",
                                 (bchno, *interfaces)).fetchone()
        if found is None:
            self._count("refused_withdrawals")
            refusal = f"流水号{bchno}无可删除的上传记录"
            return _answer(0, msgid, now, "", {"result": {"retRslt": "0", "msgRslt": refusal}})
        naming = self._db.execute("SELECT row FROM accepted WHERE infno = '3506' AND withdrawn = 0 AND row LIKE ?",
                                  (f"%{bchno}%",)).fetchall()
        if found[1] == "3505" and any(json.loads(text).get("medins_prod_sel_no") == bchno for (text,) in naming):
            self._count("orphaned_returns")  # a return held here names the sale row now deleted
        self._db.execute("UPDATE accepted SET withdrawn = 1 WHERE id = ?", (found[0],))
        self._hold(found[1], json.loads(found[2]), json.loads(found[3]), -1)
        self._count("withdrawn_rows")
        return _answer(0, msgid, now, "", {"result": {"retRslt": "1", "msgRslt": "成功"}})


def _answer(infcode: int, msgid: str, now: str, error: str, output: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"infcode": infcode, "inf_refmsgid": msgid, "refmsg_time": now, "respond_time": now, "err_msg": error,
            "output": output or {}}


def _handler(sim: PlatformSim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the standard library's name
            pass

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/_sim/counts":
                self._send(200, sim.counts())
            elif self.path == "/_sim/lines":
                self._send(200, [{"institution": key[0], "rtal_docno": key[1], "med_list_codg": key[2],
                                  "sold": str(total.sold), "returned": str(total.returned), "codes": list(total.codes)}
                                 for key, total in sorted(sim.sale_totals().items())])
            elif self.path == "/_sim/faults":
                self._send(200, asdict(sim.faults))
            else:
                self._send(404, {"error": "no such path"})

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/_sim/expire-sign-ins":
                self._send(200, {"expired": sim.expire_sign_ins()})
                return
            if self.path == "/_sim/faults":
                try:
                    sim.set_faults(json.loads(body))
                except (ValueError, TypeError) as error:
                    self._send(422, {"error": str(error)})
                    return
                self._send(200, asdict(sim.faults))
                return
            fault = sim.decide()
            if sim.faults.latency_ms:
                time.sleep(sim.faults.latency_ms / 1000)
            if fault == "outage":
                self._send(503, {"error": "scheduled outage"})
            elif fault == "error":
                self._send(500, {"error": "injected server error"})
            elif fault == "timeout":
                time.sleep(sim.faults.hang_ms / 1000)
                self.close_connection = True
            elif not sim.signature_ok(self.headers):
                self._send(200, _answer(-1, "", time.strftime("%Y%m%d%H%M%S"), "签名校验失败 (x-tif-signature)"))
            else:
                answer = sim.process(body)
                if fault == "drop":
                    self.close_connection = True  # processed, answer lost
                else:
                    self._send(200, answer)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trace-platform-sim", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--database", type=Path, default=Path("platform-sim.sqlite3"))
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--timeout-rate", type=float, default=0.0)
    parser.add_argument("--hang-ms", type=int, default=5000)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--reject-list-code", default="")
    parser.add_argument("--outage", default="", help="START:LENGTH in seconds from launch")
    parser.add_argument("--paas-token", default="")
    parser.add_argument("--sign-ttl-s", type=float, default=0.0)
    parser.add_argument("--require-sign-in", action="store_true", help="refuse requests without a sign_no")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate chain (PEM) ...")
    parser.add_argument("--tls-key", type=Path, help="... and this key")
    options = parser.parse_args(argv)
    faults = Faults(latency_ms=options.latency_ms, error_rate=options.error_rate, timeout_rate=options.timeout_rate,
                    hang_ms=options.hang_ms, drop_rate=options.drop_rate, reject_list_code=options.reject_list_code,
                    paas_token=options.paas_token, sign_in_required=options.require_sign_in,
                    sign_ttl_s=options.sign_ttl_s)
    if options.outage:
        try:
            start, length = (float(part) for part in options.outage.split(":"))
        except ValueError:
            parser.error(f"--outage wants START:LENGTH in seconds, got {options.outage!r}")
        faults.outage_start_s, faults.outage_s = start, length
    tls = (options.tls_cert, options.tls_key) if options.tls_cert and options.tls_key else None
    sim = PlatformSim(options.database, faults, host=options.host, port=options.port, seed=options.seed, tls=tls)
    sim.start()
    print(f"platform simulator on {sim.url} (database {options.database})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
