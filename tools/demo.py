"""The demo on embedded defaults: what happens to a scan, from the counter to the gateway's verdict on it.

For now (the foundation): decode sample scans as the device does, make the signed
event on the real micropython executable, and verify and read it on the gateway side.
"""

from __future__ import annotations

import json
import subprocess
import sys

from gateway.protocol import ProtocolError, parse_event, verify_mac0
from tools.decode import describe
from tools.paths import FIRMWARE, micropython, micropython_env

SAMPLES = [
    "]C081234567890123456789",
    "]d2010690123456789217261200102AB<GS>21XYZ123",
    "(01)06950123456786(17)270131(10)L-7(21)SN0001",
    "]Q1MA.156.M0.100023.10010001.S210512001.L200501.E20280430.C2",
    "]d2010690123456789321X",
    "]d201069012345678921725010021X",
    "6901234567892",
    "8123456789012345678",
]
DEMO_KEY = bytes(range(32))  # the protocol's test-vector key; real keys come from provisioning
DEVICE = "dev-0001"
SIGN_ON_DEVICE = """
from tcagent import codes, cose, event
scan = codes.decode(bytes.fromhex("{line_hex}"))
payload = event.encode("{device}", 1, 1, 0, 1500, 0, 1, scan, "T-0001", 0)
print(cose.sign(cose.MacKey(bytes(range(32))), payload, b"{device}").hex())
"""


def section(title: str) -> None:
    print(f"\n== {title}")


def sign_on_micropython(line: bytes) -> bytes:
    script = SIGN_ON_DEVICE.format(device=DEVICE, line_hex=line.hex())
    result = subprocess.run(
        [micropython(), "-c", script], env=micropython_env(FIRMWARE),
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"micropython failed: {result.stderr}")
    return bytes.fromhex(result.stdout.strip())


def main() -> int:
    section("1. Scans decoded as the counter device decodes them (tcagent.codes)")
    print(f"{'kind':9} {'verdict':18} {'product':26} {'serial':10} {'lot':6} {'expiry':6}  input")
    for sample in SAMPLES:
        result = describe(sample.encode(), today="261122")
        print(f"{result['kind']:9} {result['error']:18} {result['pid']:26} {result['serial']:10} {result['lot']:6} "
              f"{result['expiry']:6}  {sample}")

    section("2. The event for one scan, encoded and signed on the micropython executable")
    line = SAMPLES[1].replace("<GS>", "\x1d").encode()
    message = sign_on_micropython(line)
    print(f"COSE_Mac0, {len(message)} bytes, for topic tc/v1/{DEVICE}/ev:\n{message.hex()}")

    section("3. The gateway verifies the MAC with the device's key and reads the event (gateway.protocol)")
    signed = verify_mac0(message, {DEVICE: DEMO_KEY}.get, topic_device=DEVICE)
    event = parse_event(signed)
    shown = {name: value for name, value in vars(event).items() if value not in ("", 0, b"")}
    print(json.dumps(shown, default=lambda value: value.decode("ascii", "backslashreplace"), ensure_ascii=False))

    section("4. The same message with one byte changed, and on another device's topic")
    tampered = bytearray(message)
    tampered[60] ^= 0x01
    for label, data, topic in (("tampered", bytes(tampered), DEVICE), ("wrong topic", message, "dev-0002")):
        try:
            verify_mac0(data, {DEVICE: DEMO_KEY}.get, topic_device=topic)
            print(f"{label}: accepted (this is a bug)")
            return 1
        except ProtocolError as error:
            print(f"{label}: refused, reason {error.reason!r} ({error})")
    print("\nNext steps of the demo (broker, gateway, platform) arrive with the firmware-agent and gateway issues.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
