"""Calls into firmware code, identical on CPython and MicroPython (the test harness's own wire).

Values cross as JSON: bytes as {"$b": hex}, maps as {"$map": [[k, v], ...]},
tags as {"$tag": n, "v": value}; an exception as {"$err": name, "code": n, "msg": text}.
`serve()` runs on the micropython executable, reading one request per line.
"""

import json
import sys

from tcagent.codec import cbor

import fwcalls

ANSWER_MARK = "@@rpc "  # firmware output (asyncio's notes on stdout) must not be read as an answer


def to_wire(value):
    if isinstance(value, (bytes, bytearray)):
        return {"$b": bytes(value).hex()}
    if isinstance(value, dict):
        return {"$map": [[to_wire(key), to_wire(item)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    if isinstance(value, cbor.Tag):
        return {"$tag": value.tag, "v": to_wire(value.value)}
    return value


def from_wire(value):
    if isinstance(value, dict):
        if "$b" in value:
            return bytes.fromhex(value["$b"])
        if "$map" in value:
            result = {}
            for key, item in value["$map"]:
                key = from_wire(key)
                result[tuple(key) if isinstance(key, list) else key] = from_wire(item)
            return result
        if "$tag" in value:
            return cbor.Tag(value["$tag"], from_wire(value["v"]))
        return {key: from_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_wire(item) for item in value]
    return value


def call(request):
    """Run one request {"f": name, "a": [args], "k": {kwargs}} and return the JSON-ready answer."""
    try:
        function = getattr(fwcalls, request["f"])
        result = function(*from_wire(request["a"]), **request.get("k", {}))
        return {"ok": to_wire(result)}
    except Exception as error:  # every firmware error crosses as data
        return {"$err": type(error).__name__, "code": getattr(error, "code", None), "msg": str(error)}


def serve():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        print(ANSWER_MARK + json.dumps(call(json.loads(line))))


if __name__ == "__main__":
    serve()
