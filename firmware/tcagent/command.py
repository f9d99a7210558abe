"""Signed commands from the gateway (docs/protocol.md, "Command"): checked whole, their id stored, then applied,
and answered on `tc/v1/<dev>/res` with a signed result (docs/protocol.md, "Command answer").

Imported at the first command rather than at boot: commands are rare and the heap is small.
"""

from tcagent import feedback
from tcagent.codec import cbor, cose, event
from tcagent.codec.compat import const
from tcagent.codec.errors import AgentError

_TIME = const(1)
_MODE = const(2)
_RESEND = const(3)
_CONFIG = const(4)
_REBOOT = const(5)
_KEYS = const(5)  # a command map has keys 0-4 only
_TIME_MIN_MS = const(1577836800000)  # 2020-01-01: a time outside 2020-2099 is refused
_TIME_MAX_MS = const(4102444800000)
# what the config command may change at run time, with the range it accepts
_RUNTIME_CONFIG = {"debounce_ms": (0, 60000), "line_timeout_ms": (0, 10000), "gs1_form": (0, 2),
                   "status_interval_s": (1, 86400), "ack_timeout_s": (1, 3600)}
# answer results (docs/protocol.md): applied, or why not
APPLIED = const(0)
REFUSED_RANGE = const(1)
REFUSED_REPLAY = const(2)
REFUSED_LOCKED = const(3)


class CommandRefused(AgentError):
    """A verified command that is not applied: out of range, or its id refused by the replay guard."""


def handle(agent, message):
    """Verify, check and apply one command for `agent`, queueing its signed answer; raise CoseError (not
    verified) or CommandRefused (not applied). A command whose MAC does not verify gets no answer: its sender
    could not verify one."""
    try:
        payload = cose.verify(agent.key, cose.parse(message, max_size=2048))
    except cose.CoseError:
        agent.counts["commands_rejected"] += 1
        agent.alarm_command_mac = True
        raise
    command = None
    result = REFUSED_RANGE
    try:
        command = cbor.loads(payload, max_size=2048, max_depth=4)
        command_id, kind, argument = _checked(command)
        clock_floor = agent.hal.time_ms() if agent.hal.clock == event.CLOCK_NTP else 0
        if not agent.guard.accept(command_id, clock_floor):  # stored before the command is applied
            result = REFUSED_LOCKED if agent.guard.lost else REFUSED_REPLAY
            raise CommandRefused("command id %d refused (last %d%s)" % (
                command_id, agent.guard.last_id, ", guard lost" if agent.guard.lost else ""))
    except Exception:
        agent.counts["commands_rejected"] += 1
        agent.answer(_answer(agent, command, result, None))
        raise
    value = _apply(agent, kind, argument)
    agent.answer(_answer(agent, command, APPLIED, value))
    print("log command %d type %d applied" % (command_id, kind))


def _apply(agent, kind, argument):
    """Apply a checked command; the value its answer reports (None: nothing to report)."""
    if kind == _TIME:
        agent.hal.set_time(argument)
        return agent.hal.time_ms()
    if kind == _MODE:
        agent.mode = argument
        agent.hal.signal(feedback.MODE, str(argument))
        return argument
    if kind == _RESEND:
        agent.port.resend_from = min(argument, agent.journal.last_seq + 1)
        agent.wake.set()
        return agent.port.resend_from
    if kind == _CONFIG:
        for name in argument:
            agent.config[name] = argument[name]
        agent.debouncer.window_ms = agent.config["debounce_ms"]
        agent.framer.timeout_ms = agent.config["line_timeout_ms"]
        now = {}
        for name in _RUNTIME_CONFIG:
            now[name] = agent.config[name]
        return now
    agent.reboot_soon()  # after the answer is out (tcagent.agent)
    return None


def _answer(agent, command, result, value):
    """The signed answer map: which command (id and type, 0 when they were not unsigned integers), the result,
    the last id the guard accepted, and the value when there is one."""
    fields = {0: 1, 1: 0, 2: 0, 3: result, 4: agent.guard.last_id}
    if type(command) is dict:
        for key in (1, 2):
            if cbor.uint(command.get(key)) >= 0:
                fields[key] = command[key]
    if value is not None:
        fields[5] = value
    return cose.sign(agent.key, cbor.dumps(fields), agent.kid)


def _checked(command):
    """(id, type, argument) of a command map whose every field is in range; CommandRefused otherwise."""
    if type(command) is not dict or command.get(0) != 1 or type(command.get(0)) is not int:
        raise CommandRefused("command is not a version 1 map")
    for key in command:
        if type(key) is not int or not 0 <= key < _KEYS:
            raise CommandRefused("command has an unknown key")
    command_id = cbor.uint(command.get(1))
    kind = cbor.uint(command.get(2))
    argument = command.get(4)
    if command_id < 0 or kind < 0 or cbor.uint(command.get(3)) < 0:
        raise CommandRefused("command needs an id, a type and an issue time")
    number = cbor.uint(argument)
    if kind == _TIME:
        good = _TIME_MIN_MS <= number < _TIME_MAX_MS
    elif kind == _MODE:
        good = 1 <= number <= 7
    elif kind == _RESEND:
        good = number > 0
    elif kind == _CONFIG:
        good = type(argument) is dict and _config_valid(argument)
    else:
        good = kind == _REBOOT and argument is None
    if not good:
        raise CommandRefused("command type %d with an argument out of range" % kind)
    return command_id, kind, argument


def _config_valid(changes):
    for name in changes:
        bounds = _RUNTIME_CONFIG.get(name) if type(name) is str else None
        if bounds is None or not bounds[0] <= cbor.uint(changes[name]) <= bounds[1]:
            return False
    return True
