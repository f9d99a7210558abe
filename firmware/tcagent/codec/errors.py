"""The root of tcagent's own exceptions, at the bottom so that every module can derive from it.

A face of the agent (boot, the scanner's intake, the MQTT handler, the link) catches `AgentError` for what the
agent knows can go wrong there: a refused input, a file it cannot trust, a broken connection. Python's own
errors stay Python's. Each class has this one base: MicroPython allows one built-in base per class, so none is
also an OSError or a ValueError (the link catches `(OSError, AgentError)`).
"""


class AgentError(Exception):
    """Something tcagent refuses or cannot use; the message says what."""
