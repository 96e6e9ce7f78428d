"""The layout's imports point down: each layer imports only the layers beneath it.

    qmailing   the project: settings, URLs, ASGI, Celery, the pages that gather from every app
    agent      the agent surface: operation registry, gates, call pipeline, REST, OpenAPI, OAuth, MCP
    webhooks   one consumer of the event log
    mailboxes  mail: receiving, storing, sending, forwarding
    domains    custom domains and their DNS
    events     the event log: publishing, waiting, long-polls (domains and mailboxes publish to it)
    accounts   people, accounts, plans, scopes, tokens
    core       the kernel: errors, pagination, rate limits, environment; imports no app

An app's operation modules (`operations.py`, `*_operations.py`) are the agent surface's part of that app:
they declare its operations and may import `agent`. Imports are read from the source (every `import` and
`from … import`, function-local ones included), so a cycle dodged inside a function still counts.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["core", "accounts", "events", "domains", "mailboxes", "webhooks", "agent", "qmailing"]
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _layer_of_module(module):
    return module.split(".", 1)[0]


def _violations():
    found = []
    for layer in LAYERS:
        folder = ROOT / layer
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts:
                continue
            is_operations = path.name == "operations.py" or path.name.endswith("_operations.py")
            ceiling = RANK["agent"] if is_operations and layer != "core" else RANK[layer]
            for line, module in _imports(path):
                target = _layer_of_module(module)
                if target in RANK and RANK[target] > ceiling:
                    found.append(f"{relative}:{line} imports {module} (layer {target} is above {layer})")
    return found


def test_every_import_points_down():
    assert _violations() == []


def test_the_kernel_imports_no_app():
    kernel = [path for path in (ROOT / "core").rglob("*.py")]
    assert kernel, "core/ holds the kernel"
    apps = set(LAYERS) - {"core"}
    for path in kernel:
        for line, module in _imports(path):
            assert _layer_of_module(module) not in apps, f"{path.relative_to(ROOT)}:{line} imports {module}"


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule catches what it is meant to: a kernel module that imports an app, even inside a function."""
    fake = tmp_path / "core"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from accounts.models import Account\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert _violations() == ["core/bad.py:2 imports accounts.models (layer accounts is above core)"]
