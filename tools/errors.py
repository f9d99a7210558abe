"""The tools' one exception root. A tool raises a subclass when the technician must fix something (a board not
found, an id taken, an architecture without an executable); each command's main prints it once as
`COMMAND: message` and exits 2, so no traceback reaches the technician and nothing below main prints or exits."""


class ToolError(Exception):
    """Something the technician must fix; the message says what."""
