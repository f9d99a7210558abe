"""The wire format a device writes and reads, with nothing of the agent: trace codes (`codes`, `gs1`, `ma`, the
validation `reasons`), CBOR, COSE_Mac0, the scan event with its size limits and clock states, and the MQTT topics.
The bottom of the firmware: nothing here imports anything else of tcagent (docs/firmware.md, "Layout")."""
