"""One exception root: every exception class the gateway defines is a GatewayError of a known kind, so each face
(CLI, HTTP, MQTT) translates them in one place."""

import importlib
import pkgutil

import gateway
from gateway.errors import KINDS, GatewayError


def _exception_classes() -> list[type[BaseException]]:
    """The public exception classes of every gateway module (a private one, like wire/codes.py's, never leaves
    its module)."""
    found = []
    for module_info in pkgutil.walk_packages(gateway.__path__, "gateway."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        found += [value for value in vars(module).values()
                  if isinstance(value, type) and issubclass(value, BaseException)
                  and value.__module__ == module.__name__ and not value.__name__.startswith("_")]
    return found


def test_every_gateway_exception_derives_from_the_root_with_a_known_kind():
    classes = _exception_classes()
    assert len(classes) >= 15  # ProtocolError, TicketError, StoreError, HttpError, ConfigError, ...
    assert [cls.__qualname__ for cls in classes if not issubclass(cls, GatewayError)] == []
    assert {cls.__qualname__: cls.kind for cls in classes if cls.kind not in KINDS} == {}
