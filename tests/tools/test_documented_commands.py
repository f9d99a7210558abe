"""Every command the docs show parses as shown: each `.venv/bin/trace-…` and `trace-gateway …` line (the installed
commands) and each `.venv/bin/python -m benchmarks.…`, `soaks.…` or `demo…` line (the checkout's) in a code block of
README.md, docs/*.md and hil_tests/README.md is handed to its command's own argument parser (the command stops
right after parsing; nothing runs). A renamed flag, subcommand or module that the docs still show fails here."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "hil_tests" / "README.md"]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
_COMMAND = re.compile(r"^(?:sudo\s+)?(?:\S*/)?(trace-[a-z-]+)(?:\s+(.*))?$")
CHECKOUT_PACKAGES = ("benchmarks", "soaks", "demo")
"""The repository's folders of commands run from a checkout with `python -m`, not installed with the wheel."""
_CHECKOUT_COMMAND = re.compile(r"^(?:sudo\s+)?(?:\S*/)?python3?\s+-m\s+((?:" + "|".join(CHECKOUT_PACKAGES)
                               + r")(?:\.\w+)?)(?:\s+(.*))?$")
_DEMO_SCRIPT = re.compile(r"^(?:bash\s+)?tools/(demo)\.sh(?:\s+(.*))?$")
"""The README's first command: tools/demo.sh hands its arguments to `python -m demo`."""


def _entry_point(tool: str) -> str:
    """module:function of an installed command, or of a checkout command given as its module."""
    if tool in SCRIPTS:
        return SCRIPTS[tool]
    return f"{tool}.__main__:main" if "." not in tool else f"{tool}:main"


def checkout_commands() -> list[str]:
    """The modules under CHECKOUT_PACKAGES that are commands (they define main), as `python -m` names them."""
    found = []
    for package in CHECKOUT_PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            if "\ndef main(" in path.read_text(encoding="utf-8"):
                found.append(package if path.stem == "__main__" else f"{package}.{path.stem}")
    return found


def documented_commands() -> list[tuple[str, str, str]]:
    """(where, tool, arguments) of each command line in the docs' shell code blocks."""
    found = []
    for path in DOCS:
        in_block, pending = False, ""
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                in_block = not in_block and line.strip() in ("```sh", "```bash", "```")
                continue
            if not in_block:
                continue
            text = pending + line.strip()
            if text.endswith("\\"):
                pending = text[:-1] + " "
                continue
            pending = ""
            shown = text.split(" # ")[0].split("  #")[0].strip()
            match = _COMMAND.match(shown)
            if (match and match.group(1) in SCRIPTS or (match := _CHECKOUT_COMMAND.match(shown))
                    or (match := _DEMO_SCRIPT.match(shown))):
                found.append((f"{path.relative_to(ROOT)}:{number}", match.group(1), match.group(2) or ""))
    return found


class _Parsed(Exception):
    pass


@pytest.mark.parametrize(("where", "tool", "arguments"), documented_commands(),
                         ids=[f"{where} {tool}" for where, tool, _ in documented_commands()])
def test_a_documented_command_parses_as_shown(monkeypatch, where, tool, arguments):
    shown = re.sub(r"\[[^\]]*\]", "", arguments)  # [--optional] parts are notation
    shown = shown.replace("…", "gateway.toml").replace("$(cat ", "(").replace("|", " ")
    argv = shlex.split(shown.split(" > ")[0].split(" | ")[0])
    real_parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        real_parse(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    module, function = _entry_point(tool).split(":")
    try:
        getattr(importlib.import_module(module), function)(argv)
    except _Parsed:
        return
    except SystemExit as error:
        if error.code == 0:  # --version, --help
            return
        pytest.fail(f"{where}: `{tool} {arguments}` does not parse (exit {error.code})")
    pytest.fail(f"{where}: `{tool}` did not parse its arguments")


def test_the_docs_show_commands():
    assert len(documented_commands()) >= 20


def test_the_docs_show_every_checkout_command():
    """Each benchmark, soak and demo command appears in a code block (the demo as tools/demo.sh), so it is
    checked above."""
    shown = {tool for _, tool, _ in documented_commands()}
    commands = checkout_commands()
    assert len(commands) >= 11 and "benchmarks.codec" in commands and "demo" in commands
    assert set(commands) - shown == set()
