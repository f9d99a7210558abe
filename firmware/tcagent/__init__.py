"""The scanner agent's device code: trace-code decoding, CBOR, COSE_Mac0 and the event (MicroPython and CPython)."""
