"""The platform client: one request over HTTPS, judged at both levels the platform answers.

Success needs the transport (HTTP 200 and a JSON answer) and the business result (`infcode` 0 and
`output.result.retRslt` "1"; for a batch variant, the rows its error list does not name). A timeout or a lost
answer is an unknown outcome: the same request (same msgid) is sent again, never a new one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from gateway.contract.platform_fields import ERROR_NODE

__all__ = ["Outcome", "Signer", "NoSigner", "TifSigner", "PlatformClient"]


@dataclass(frozen=True)
class Outcome:
    kind: str
    """accepted (rows not in `failed` are accepted), refused (the whole request, with `message`), retry (transport
    failure or unknown outcome: send the same request again)."""
    message: str = ""
    failed: dict[str, str] = field(default_factory=dict)
    """fixmedins_bchno -> the platform's reason, for rows a batch refused."""


class Signer(Protocol):
    """Adds the headers a regional gateway wants; body-level signing (SM2/SM4) would be another Signer."""

    def headers(self, body: bytes) -> dict[str, str]: ...


class NoSigner:
    def headers(self, body: bytes) -> dict[str, str]:
        return {}


class TifSigner:
    """x-tif-paasid, x-tif-timestamp, x-tif-nonce, x-tif-signature = sha256hex(ts + token + nonce + ts)."""

    def __init__(self, paas_id: str, token: str) -> None:
        self._paas_id = paas_id
        self._token = token

    def headers(self, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        signature = hashlib.sha256(f"{timestamp}{self._token}{nonce}{timestamp}".encode()).hexdigest()
        return {"x-tif-paasid": self._paas_id, "x-tif-timestamp": timestamp, "x-tif-nonce": nonce,
                "x-tif-signature": signature}


class PlatformClient:
    def __init__(self, *, base_url: str, path: str, timeout_s: float, verify: bool | str, signer: Signer,
                 sale_error_node: str = "selinfoErrDetail") -> None:
        tls: bool | ssl.SSLContext = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s, verify=tls)
        self._path = path
        self._signer = signer
        self._error_nodes = {**ERROR_NODE, "3505": sale_error_node, "3506": sale_error_node}

    def send(self, infno: str, body: bytes) -> Outcome:
        reply = self.exchange(body)
        if isinstance(reply, str):
            return Outcome("retry", reply)
        return judge(infno, reply, self._error_nodes)

    def exchange(self, body: bytes) -> object:
        """The platform's parsed JSON answer to `body`, or why there is none (a transport failure or an answer
        that is not JSON: outcome unknown)."""
        headers = {"Content-Type": "application/json;charset=utf-8", **self._signer.headers(body)}
        try:
            answer = self._client.post(self._path, content=body, headers=headers)
        except httpx.TimeoutException:
            return "timeout: outcome unknown"
        except httpx.HTTPError as error:
            return f"transport: {type(error).__name__}: {error}"
        if answer.status_code != 200:
            return f"HTTP {answer.status_code}"
        try:
            reply: object = answer.json()
        except ValueError:
            return "the answer is not JSON: outcome unknown"
        return reply

    def close(self) -> None:
        self._client.close()


def judge(infno: str, reply: object, error_nodes: dict[str, str]) -> Outcome:
    """The business outcome of a platform answer (transport already fine)."""
    if not isinstance(reply, dict):
        return Outcome("retry", "the answer is not a JSON object: outcome unknown")
    if reply.get("infcode") != 0:
        return Outcome("refused", f"infcode {reply.get('infcode')!r}: {reply.get('err_msg', '')}")
    output = reply.get("output")
    output = output if isinstance(output, dict) else {}
    result = output.get("result")
    result = result if isinstance(result, dict) else {}
    errors = output.get(error_nodes.get(infno, ""))
    failed = {str(item.get("fixmedins_bchno")): str(item.get("err_msg") or item.get("msgRslt") or "refused")
              for item in errors if isinstance(item, dict)} if isinstance(errors, list) else {}
    if str(result.get("retRslt")) == "1" or failed:
        return Outcome("accepted", failed=failed)
    return Outcome("refused", f"retRslt {result.get('retRslt')!r}: {result.get('msgRslt', json.dumps(output))}")
