"""The firmware entry points the tests drive, with plain inputs and outputs (runs on both Pythons)."""

from tcagent import cbor, codes, cose, errors, event

SCAN_FIELDS = ("raw", "aim", "kind", "code", "pid", "serial", "lot", "expiry", "made", "err", "detail", "elements")


def scan(line, gs1_form=codes.GS1_FULL, today=""):
    decoded = codes.decode(line, gs1_form, today)
    result = {}
    for name in SCAN_FIELDS:
        result[name] = getattr(decoded, name)
    result["kind_name"] = codes.KIND_NAMES[decoded.kind]
    result["err_name"] = errors.NAMES[decoded.err]
    return result


def cbor_loads(data, max_size=cbor.DEFAULT_MAX_SIZE, max_depth=cbor.DEFAULT_MAX_DEPTH, indefinite=False,
               deterministic=False):
    return cbor.loads(data, max_size, max_depth, indefinite, deterministic)


def cbor_dumps(value):
    return cbor.dumps(value)


def cbor_reencode(data, indefinite=False):
    """Decode with the firmware, encode again deterministically."""
    return cbor.dumps(cbor.loads(data, indefinite=indefinite))


def mac0_sign(key, payload, kid):
    return cose.sign(cose.MacKey(key), payload, kid)


def mac0_verify(key, message):
    return cose.verify(cose.MacKey(key), cose.parse(message))


def mac0_kid(message):
    return cose.parse(message).kid


def event_encode(device, seq, boot, time_ms, uptime_ms, clock, op, line, ticket="", split_qty=0, today=""):
    decoded = codes.decode(line, codes.GS1_FULL, today)
    return event.encode(device, seq, boot, time_ms, uptime_ms, clock, op, decoded, ticket, split_qty)


def signed_event(key, device, seq, boot, time_ms, uptime_ms, clock, op, line, ticket="", split_qty=0):
    payload = event_encode(device, seq, boot, time_ms, uptime_ms, clock, op, line, ticket, split_qty)
    return cose.sign(cose.MacKey(key), payload, device.encode())
