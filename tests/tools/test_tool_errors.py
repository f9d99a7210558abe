"""The tools have one exception root: every exception a tool defines is a ToolError, which each command's main
prints as one line (exit 2), so a new error class cannot reach a technician as a traceback."""

import importlib
import inspect
import pkgutil

import tools
from tools.errors import ToolError


def test_every_exception_the_tools_define_is_a_tool_error():
    defined = []
    for module_info in pkgutil.iter_modules(tools.__path__, "tools."):
        module = importlib.import_module(module_info.name)
        defined += [value for value in vars(module).values() if inspect.isclass(value)
                    and issubclass(value, BaseException) and value.__module__ == module.__name__]
    assert len(defined) >= 4  # ToolError, FlashError, ProvisionError, ArchError
    assert [error.__qualname__ for error in defined if not issubclass(error, ToolError)] == []
