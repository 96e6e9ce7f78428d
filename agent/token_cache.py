"""The authenticated tokens this process has seen, so a call does not read its token from the database again.

    access_token, mailbox_ids = token_cache.lookup(plaintext)   # (None, None) for a token we do not know

An entry holds what agent.gates.authenticate builds the Actor from: the token's row, its person's, the
account's, the plan's and the application's (their column values; fresh model instances are built from them on
every hit, so no two calls share an object), the mailboxes the token is limited to, and when it was read. It is
keyed by the token's SHA-256 checksum (the plaintext is never kept), and only a token that passed
authentication is stored: a refused token is looked up again on each call, so a cache can never admit one.

How an entry goes away, whatever removes the right to call:
- expiry: the token's `expires` is kept and checked on every hit, as the database row would be;
- a change that the product makes (a token revoked, replaced by a refresh or deleted, a person deactivated or
  saved, an account's plan or grants changed, an account closing) drops every entry of that account, once the
  change has committed, in this process and in every other: through Redis with REDIS_URL (the events.stream
  wake-up of the account, with the GRANTS_CHANGED payload, which every process's listener already relays),
  and on the embedded default (one node) through a stamp file in QMAILING_VAR_DIR that every lookup checks
  with one stat() and that each such change rewrites;
- TTL_SECONDS after it was read, whatever happened: the backstop for a change made behind the product's back
  (a row edited by hand) or a lost wake-up while Redis was away.
A miss that raced with an invalidation (it read the row before the change committed) is not stored: the
generation counter moved while it read.
"""

import hashlib
import os
import threading
import time
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events import stream

TTL_SECONDS = 30
MAX_ENTRIES = 50_000
GRANTS_CHANGED = "grants"  # the events.stream wake-up payload that means "drop this account's tokens"
STAMP_NAME = "token-revocations"


def checksum_of(plaintext):
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _row(instance):
    if instance is None:
        return None
    fields = instance._meta.concrete_fields
    return type(instance), tuple(field.attname for field in fields), tuple(getattr(instance, field.attname)
                                                                          for field in fields)


def _instance(row):
    if row is None:
        return None
    model, names, values = row
    return model.from_db("default", names, values)


class _Entry:
    __slots__ = ("token", "user", "account", "plan", "application", "mailbox_ids", "account_id", "expires", "read_at",
                 "epoch")

    def __init__(self, access_token, mailbox_ids, epoch):
        user = access_token.user
        self.token, self.user = _row(access_token), _row(user)
        self.account, self.plan = _row(user.account), _row(user.account.plan)
        self.application = _row(access_token.application)
        self.mailbox_ids, self.account_id = mailbox_ids, str(user.account_id)
        self.expires, self.read_at, self.epoch = access_token.expires, time.monotonic(), epoch

    def build(self):
        """Fresh model instances, related as select_related("user__account__plan", "application") leaves them."""
        access_token, user, account = _instance(self.token), _instance(self.user), _instance(self.account)
        account.plan = _instance(self.plan)
        user.account = account
        access_token.user = user
        access_token.application = _instance(self.application)
        return access_token


class _Cache:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}  # checksum -> _Entry
        self._by_account = {}  # account id (str) -> set of checksums
        self.generation = 0  # moves on every invalidation: a miss read before it is not stored
        self._stamp = None

    def get(self, checksum):
        self._check_stamp()
        entry = self._entries.get(checksum)
        if entry is None:
            return None
        if (time.monotonic() - entry.read_at > TTL_SECONDS or entry.expires <= timezone.now()
                or entry.epoch != stream.wake_epoch()):
            self._drop(checksum)
            return None
        return entry

    def put(self, checksum, entry, *, generation):
        with self._lock:
            if generation != self.generation or entry.epoch is None or entry.epoch != stream.wake_epoch():
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
                self._by_account.clear()
            self._entries[checksum] = entry
            self._by_account.setdefault(entry.account_id, set()).add(checksum)

    def _drop(self, checksum):
        with self._lock:
            entry = self._entries.pop(checksum, None)
            if entry is not None:
                self._by_account.get(entry.account_id, set()).discard(checksum)

    def forget_account(self, account_id):
        with self._lock:
            self.generation += 1
            for checksum in self._by_account.pop(str(account_id), ()):
                self._entries.pop(checksum, None)

    def clear(self):
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self._by_account.clear()

    def _check_stamp(self):
        if settings.REDIS_URL:
            return
        stamp = _stamp_state()
        if stamp != self._stamp:
            self.clear()
            self._stamp = stamp


_cache = _Cache()


def _stamp_path():
    return os.path.join(str(settings.VAR_DIR), STAMP_NAME)


def _stamp_state():
    try:
        state = os.stat(_stamp_path())
    except FileNotFoundError:
        return None
    return state.st_ino, state.st_mtime_ns, state.st_size


def _write_stamp():
    """Rewrite the stamp file (a new file moved into place: a new inode, so every reader sees a change)."""
    path = _stamp_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{uuid.uuid4().hex}"
    with open(temporary, "w") as stamp:
        stamp.write(uuid.uuid4().hex)
    os.replace(temporary, path)


class Miss(Exception):
    """lookup(read=None) found nothing: the token must be read from the database."""


def lookup(plaintext, *, read):
    """(access_token, mailbox_ids, pending) for `plaintext`: from the cache, or from `read(checksum)`, which
    returns the first two (access_token None for an unknown token); Miss when `read` is None. The caller says
    whether the token may call, and stores it with `admit(pending, …)` only then."""
    checksum = checksum_of(plaintext)
    entry = _cache.get(checksum)
    if entry is not None:
        return entry.build(), entry.mailbox_ids, None
    if read is None:
        raise Miss()
    generation = _cache.generation
    access_token, mailbox_ids = read(checksum)
    return access_token, mailbox_ids, (checksum, generation)


def admit(pending, access_token, mailbox_ids):
    """Keep a token that passed authentication (`pending` is lookup's third value; None after a hit).

    Not kept while this process may miss another's wake-ups (REDIS_URL set and its subscriber not subscribed):
    the next call reads the database again."""
    if pending is None:
        return
    stream.on_wake(woken)
    checksum, generation = pending
    _cache.put(checksum, _Entry(access_token, mailbox_ids, stream.wake_epoch()), generation=generation)


def forget_account(account_id):
    """Drop the account's tokens here and in every process, once the current transaction (if any) commits; the
    same wake-up tells the MCP sessions to list their tools again (agent.mcp.push)."""
    account_id = str(account_id)
    _cache.forget_account(account_id)  # now as well: a call of this process during the transaction reads again

    def everywhere():
        _cache.forget_account(account_id)
        if not settings.REDIS_URL:
            _write_stamp()  # before the wake-up: whoever is woken reads the change
        stream.wake(account_id, payload=GRANTS_CHANGED)

    transaction.on_commit(everywhere)


def clear():
    """Drop every entry of this process (tests that change a token's row behind the product's back)."""
    _cache.clear()


def woken(account_id, payload):
    """The events.stream hook: a wake-up from another process (or this one) that an account's grants changed."""
    if payload in (GRANTS_CHANGED, GRANTS_CHANGED.encode()):
        _cache.forget_account(account_id)
