"""The firmware's imports run one way (docs/firmware.md, "Layout"): the codec at the bottom imports nothing else
of tcagent, the board layer nothing of the agent above it, and the link not the agent."""

import ast

import pytest

from conftest import FIRMWARE

PACKAGE = FIRMWARE / "tcagent"


def _imports(path):
    """The tcagent modules `path` imports, as dotted names (`from tcagent.codec import cbor` gives
    tcagent.codec.cbor), wherever the import statement is (commands are imported inside a function); a relative
    import (`from ..agent import Agent`, which MicroPython takes too) is read as the absolute one it means."""
    return _imports_in(path.read_text(), ".".join(path.relative_to(FIRMWARE).with_suffix("").parts[:-1]))


def _imports_in(text, package):
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*anchor, *([node.module] if node.module else [])])
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tcagent"):
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("tcagent"))
    return found


def _modules(folder):
    return sorted(folder.glob("*.py"))


def _within(name, allowed):
    return any(name == prefix or name.startswith(prefix + ".") for prefix in allowed)


@pytest.mark.parametrize("path", _modules(PACKAGE / "codec"), ids=lambda path: path.name)
def test_the_codec_imports_nothing_above_it(path):
    assert [name for name in _imports(path) if not _within(name, ["tcagent.codec"])] == []


@pytest.mark.parametrize("path", _modules(PACKAGE / "hal"), ids=lambda path: path.name)
def test_the_board_layer_imports_nothing_of_the_agent(path):
    allowed = ["tcagent.codec", "tcagent.hal", "tcagent.compat", "tcagent.feedback"]
    assert [name for name in _imports(path) if not _within(name, allowed)] == []


def test_the_link_does_not_import_the_agent():
    assert [name for name in _imports(PACKAGE / "link.py") if _within(name, ["tcagent.agent", "tcagent.command"])] == []


def test_a_relative_import_is_read_as_what_it_means():
    found = _imports_in("from ..agent import Agent\nfrom . import board\n", "tcagent.hal")
    assert found == {"tcagent.agent.Agent", "tcagent.hal.board"}


def test_the_rules_see_imports():
    """The checks above would pass on a parser that found nothing: the agent's imports are seen."""
    assert {"tcagent.journal", "tcagent.codec.event", "tcagent.command"} <= _imports(PACKAGE / "agent.py")
