"""The gateway's imports run one way, from the faces down to the wire format and the store, without cycles.

LAYERS is the one place that says which package sits above which; a module may import its own layer or a lower
one, never a higher one, and no chain of imports (lazy ones inside functions included) may come back to where
it started. The graph is read with `ast`, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("gateway", "gateway.errors", "gateway.logs"),  # the package's version, the error root, log setup
    ("gateway.settings", "gateway.rules"),  # what the config file holds
    ("gateway.config",),  # loading it
    ("gateway.wire",),  # the device's bytes
    ("gateway.contract",),  # the platform's fields and rows
    ("gateway.store",),  # transactions, schema, SQLite, PostgreSQL
    ("gateway.domain",),  # judging, ledger, tickets, rates, alerts, outbox plan, users, commands
    ("gateway.metrics",),  # the counters the services bump
    ("gateway.ingest", "gateway.outbound"),  # broker -> store; store -> platform: neither knows the other
    ("gateway.faces",),  # HTTP API, dashboard, exports, CLI tables
    ("gateway.systemd",),  # sd_notify
    ("gateway.service",),  # the running gateway
    ("gateway.faces.cli",),  # what starts it all
)
"""Lowest first. A module belongs to the longest name here that is it or a package holding it."""


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under root/gateway."""
    found = {}
    for path in sorted((root / "gateway").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The gateway modules `name` imports anywhere in its text (at the top or inside a function)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # gateway.x.Name -> gateway.x
                target = target.rpartition(".")[0]
            if target and target != name and not _is_package_of(target, name, modules):
                found.add(target)
    return found


def _is_package_of(target: str, name: str, modules: dict[str, Path]) -> bool:
    """Importing gateway.wire.protocol runs gateway/wire/__init__.py too: that is no edge of the design."""
    return name.startswith(target + ".") or (modules[target].name == "__init__.py" and target != "gateway")


def layer_of(name: str, layers: tuple[tuple[str, ...], ...]) -> int | None:
    placed = place_of(name, layers)
    return None if placed is None else placed[0]


def place_of(name: str, layers: tuple[tuple[str, ...], ...]) -> tuple[int, str] | None:
    """(layer, the name of LAYERS that holds `name`): the longest that is it or a package holding it."""
    best: tuple[int, str] | None = None
    for index, names in enumerate(layers):
        for prefix in names:
            holds = name == prefix or (prefix != "gateway" and name.startswith(prefix + "."))  # the root: itself
            if holds and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    return best


def problems(root: Path, layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """Every module without a layer, every import upwards or sideways (to another name of its own layer: the names
    of one layer do not know each other), and every import cycle, in words."""
    modules = module_names(root)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    found = []
    for name in sorted(graph):
        placed = place_of(name, layers)
        if placed is None:
            found.append(f"{name} has no layer in LAYERS")
            continue
        own, holder = placed
        for target in sorted(graph[name]):
            theirs = place_of(target, layers)
            if theirs is not None and theirs[0] > own:
                found.append(f"{name} (layer {own}) imports {target} (layer {theirs[0]}): upwards")
            elif theirs is not None and theirs[0] == own and theirs[1] != holder:
                found.append(f"{name} ({holder}) imports {target} ({theirs[1]}): sideways, within layer {own}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of more than one module (Tarjan), as a path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_around(group, graph) for group in groups]


def _path_around(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    start, members = group[0], set(group)
    path, seen = [start], {start}
    while True:
        nxt = sorted(target for target in graph[path[-1]] if target in members)
        back = [target for target in nxt if target == start]
        if back and len(path) > 1:
            return [*path, start]
        fresh = [target for target in nxt if target not in seen]
        if not fresh:
            return [*path, nxt[0]] if nxt else path
        path.append(fresh[0])
        seen.add(fresh[0])


def test_imports_run_downward_without_cycles() -> None:
    assert problems(ROOT) == []


def test_the_gateway_imports_no_firmware() -> None:
    """The device's code is the device's: the gateway decodes what it must itself (gateway/wire/codes.py)."""
    firmware = [f"{name}: {node.lineno}" for name, path in module_names(ROOT).items()
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom | ast.Import)
                and any((alias.name if isinstance(node, ast.Import) else node.module or "").startswith("tcagent")
                        for alias in node.names)]
    assert firmware == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_an_upward_import_is_named(tmp_path: Path) -> None:
    """The flat gateway's config imported the API's settings: config sits below the faces, so that is refused."""
    root = _tree(tmp_path, {"gateway/__init__.py": "", "gateway/config.py": "from gateway.faces.api import X\n",
                            "gateway/faces/__init__.py": "", "gateway/faces/api.py": "X = 1\n"})
    assert problems(root) == ["gateway.config (layer 2) imports gateway.faces.api (layer 9): upwards"]


def test_a_sideways_import_is_named(tmp_path: Path) -> None:
    """Ingest and forwarding share a layer and meet only in the store: one importing the other is refused."""
    root = _tree(tmp_path, {"gateway/__init__.py": "", "gateway/ingest/__init__.py": "",
                            "gateway/ingest/loop.py": "from gateway.outbound import forwarder\n",
                            "gateway/outbound/__init__.py": "", "gateway/outbound/forwarder.py": ""})
    assert problems(root) == ["gateway.ingest.loop (gateway.ingest) imports gateway.outbound.forwarder "
                              "(gateway.outbound): sideways, within layer 8"]


def test_a_cycle_is_named_even_through_a_lazy_import(tmp_path: Path) -> None:
    """store <-> pgstore, as it was: one of them imported the other inside a function."""
    root = _tree(tmp_path, {"gateway/__init__.py": "", "gateway/store/__init__.py": "",
                            "gateway/store/base.py": "def f():\n    from gateway.store.postgres import P\n",
                            "gateway/store/postgres.py": "from gateway.store.base import f\nP = 1\n"})
    assert problems(root) == ["import cycle: gateway.store.base -> gateway.store.postgres -> gateway.store.base"]


def test_a_module_outside_the_layers_is_named(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"gateway/__init__.py": "", "gateway/stray.py": "from gateway import config\n",
                            "gateway/config.py": ""})
    assert problems(root) == ["gateway.stray has no layer in LAYERS"]


def test_a_cli_command_loads_no_mqtt_http_or_metrics_library(tmp_path: Path) -> None:
    """Settings sit below the services: `trace-gateway users list` runs without paho, httpx or prometheus_client
    (nor the HTTP server's starlette and hypercorn, nor psycopg for a SQLite store)."""
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    script = ("import json, sys\nfrom gateway.faces.cli import main\nstatus = main(sys.argv[1:])\n"
              "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\nsys.exit(status)\n")
    done = subprocess.run([sys.executable, "-c", script, "--config", str(config), "users", "list"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "read-token" in done.stdout  # the command did its work
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "gateway" in loaded and "sqlite3" in loaded
    assert loaded.isdisjoint({"paho", "httpx", "prometheus_client", "starlette", "hypercorn", "psycopg"}), loaded
