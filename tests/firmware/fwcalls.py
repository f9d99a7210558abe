"""The firmware entry points the tests drive, with plain inputs and outputs (runs on both Pythons)."""

from tcagent import cbor, codes, cose, errors, event, gs1

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


def gs1_parse(text, bracketed=False):
    return (gs1.parse_bracketed if bracketed else gs1.parse)(text)


def gs1_table():
    """Every AI the parser knows (the 4-digit decimal families expanded) with its length and flags."""
    ais = list(gs1._TABLE)
    for family in gs1._DECIMAL_AIS + tuple(gs1._AMOUNT_AIS):
        ais.extend(family + str(digit) for digit in range(10) if gs1.lookup(family + str(digit), 0))
    ais.extend(str(number) for number in range(91, 100))
    table = []
    for ai in ais:
        found = gs1.lookup(ai, 0)
        table.append([ai, found[1], found[2] & gs1.FIXED != 0, found[2] & gs1.NUMERIC != 0])
    return table


def which_files(module_name):
    """The file a module was loaded from (to prove a test ran the compiled .mpy)."""
    module = __import__(module_name, None, None, ["__name__"])
    return module.__file__
