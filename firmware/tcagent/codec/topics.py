"""The MQTT topics of one device (docs/protocol.md, "Topics"): the only place the firmware spells them.
The gateway spells the same topics on its side; tests/firmware/test_topics.py holds the two together."""


class Topics:
    """The five topics of `device`: published by it (events, status, command answers) and read by it (acks,
    commands). Built once at boot, so a publish does not format a string."""

    def __init__(self, device):
        prefix = "tc/v1/%s/" % device
        self.ev = prefix + "ev"
        self.status = prefix + "status"
        self.res = prefix + "res"
        self.ack = prefix + "ack"
        self.cmd = prefix + "cmd"
