"""Per-worker isolation under pytest-xdist; loaded first (pytest.ini: `-p tests.workers`), before pytest-django
reads the settings, because the settings take their folders from the environment when they are imported.

Each xdist worker (PYTEST_XDIST_WORKER = gw0, gw1, ...) gets a var dir of its own under the run's
QMAILING_VAR_DIR: the embedded broker's folders, the beat schedule and the SQLite test database live there, so
two workers never share a queue or a database file. pytest-django names the PostgreSQL test database per worker
itself (test_<name>_gw0, ...), so the fault-injection tests that terminate every backend of current_database()
reach only their own worker's. Every server a test starts listens on a free port (tests/faults.py free_port).
Which tests share a worker is decided in tests/conftest.py (xdist groups). Without xdist nothing changes.
"""

import os
from pathlib import Path

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")

if WORKER:
    _base = Path(os.environ.get("QMAILING_VAR_DIR") or Path(__file__).resolve().parents[1] / "var")
    os.environ["QMAILING_VAR_DIR"] = str(_base / f"worker-{WORKER}")
    if os.environ.get("QMAILING_SQLITE_TEST_PATH"):
        # A test database path given for the whole run: one file per worker beside it.
        os.environ["QMAILING_SQLITE_TEST_PATH"] += f".{WORKER}"


# The longest xdist groups (tests/conftest.py names them) are handed out first, so no worker starts one of them
# while the others run out of work: the run ends when the longest group does, not minutes after it.
LONGEST_FIRST = ("in-process-asgi", "tests/e2e/test_walk.py", "tests/qmailing/test_schemathesis.py",
                 "tests/qmailing/test_processes.py", "broker", "tests/agent/mcp/test_inspector.py",
                 "tests/agent/mcp/test_ts_client.py")


def _group(item):
    marker = item.get_closest_marker("xdist_group")
    name = (marker.args[0] if marker.args else marker.kwargs.get("name")) if marker is not None else None
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items):
    """Under xdist only, after pytest-django's order (a stable sort: each group keeps its own order)."""
    if WORKER:
        items.sort(key=_group)
