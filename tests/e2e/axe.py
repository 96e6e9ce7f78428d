"""axe-core for the browser walk, installed from npm exactly as scripts/axe/package-lock.json pins it.

The same approach as scripts/mcp-inspector: the pins live in the repository (scripts/axe/), the install goes
to a git-ignored cache (.cache/axe/, or QMAILING_AXE_CACHE) under a lock (parallel runs share it), and is
redone only when package.json or the lock file changes (a hash of both is kept in .installed).
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "scripts" / "axe"


class AxeUnavailable(Exception):
    """axe-core could not be installed here (no npm, or the registry is unreachable)."""


def axe_install():
    """Path of the pinned axe.min.js, installing it once; AxeUnavailable says why it cannot be had."""
    cache = Path(os.environ.get("QMAILING_AXE_CACHE", ROOT / ".cache" / "axe"))
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    pins = [PINS / "package.json", PINS / "package-lock.json"]
    want = hashlib.sha256(b"".join(path.read_bytes() for path in pins)).hexdigest()
    npm = shutil.which("npm")
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time
        stamp = cache / ".installed"
        if stamp.exists() and stamp.read_text().strip() == want and script.exists():
            return script
        if npm is None:
            raise AxeUnavailable("npm is not installed: it is needed once, to install axe-core from scripts/axe")
        shutil.rmtree(cache / "node_modules", ignore_errors=True)
        stamp.unlink(missing_ok=True)
        for path in pins:
            shutil.copy(path, cache / path.name)
        # `npm ci` installs exactly the lock's versions, checked against its integrity hashes; no scripts run.
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                              cwd=cache, capture_output=True, text=True, timeout=180)
        if done.returncode != 0 or not script.exists():
            registry = subprocess.run([npm, "config", "get", "registry"], capture_output=True, text=True).stdout.strip()
            raise AxeUnavailable(f"installing axe-core from the npm registry ({registry}) failed: "
                                 f"{(done.stderr or done.stdout).strip()[-500:]}")
        stamp.write_text(want)
        return script
