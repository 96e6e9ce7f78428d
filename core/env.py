"""The one environment reader every setting goes through.

Strict: a boolean is `true`/`false`/`1`/`0`/`yes`/`no` or an error; a secret may come from
`NAME_FILE` (a path whose contents are the value) instead of `NAME`.

Every read takes a `help=` text: it changes nothing at run time, and `manage.py docs_generate` copies it
into the configuration page (docs/operations/configuration.md), so a variable is described where it is read.
"""

import os
import secrets
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Env:
    def __init__(self, environ=None):
        self.environ = os.environ if environ is None else environ

    def _raw(self, name):
        file_path = self.environ.get(f"{name}_FILE")
        if file_path:
            try:
                return Path(file_path).read_text().strip()
            except OSError as exc:
                raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
        return self.environ.get(name)

    def str(self, name, default="", *, help=""):
        value = self._raw(name)
        return default if value is None or value == "" else value

    def bool(self, name, default=False, *, help=""):
        value = self._raw(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")

    def int(self, name, default=0, *, help=""):
        value = self._raw(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from exc

    def float(self, name, default=0.0, *, help=""):
        value = self._raw(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from exc

    def list(self, name, default=(), *, help=""):
        value = self._raw(name)
        if value is None or value.strip() == "":
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]


env = Env()


def local_secret(path):
    """A random secret made once and kept in `path` (mode 0600); every process on the machine reads the same one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    for _ in range(40):  # another process may be between creating the file and writing it
        value = path.read_text().strip()
        if value:
            return value
        time.sleep(0.05)
    raise ImproperlyConfigured(f"{path} is empty: delete it, or set DJANGO_SECRET_KEY.")
