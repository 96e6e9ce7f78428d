"""A PostgreSQL restart costs no request an error: pooled connections are checked before they are handed out.

A restart (or a failover, or an idle-connection reaper) kills the server side of every pooled connection;
without a check the pool hands each dead one out once, and that request fails. The test kills them the
way a restart does, with pg_terminate_backend from a connection of its own. It runs in a process of its own,
whose connections carry their own application_name, so the kill reaches exactly that process's pool and
nothing the rest of the suite holds.
"""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from tests.api_helpers import token_for

# Transactional: the child process must see the account and token this test commits.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHILD = """
import json, sys
import django; django.setup()
import psycopg
from django.db import close_old_connections, connection
from django.test import Client

from accounts.models import Account
from agent.operations import registry
from tests.api_helpers import call

account_id, token, name = sys.argv[1], sys.argv[2], sys.argv[3]

def kill():
    db = connection.settings_dict
    with psycopg.connect(dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"],
                         port=db["PORT"] or None, autocommit=True) as killer:
        return killer.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = %s", [name]).fetchone()[0]

client, list_mailboxes = Client(), registry()["qmailing_list_mailboxes"]
before = call(client, list_mailboxes, token=token).status_code
Account.objects.filter(pk=account_id).count()
close_old_connections()  # what the server does when a request ends: the connection goes back to the pool
killed = kill()
try:
    orm = Account.objects.filter(pk=account_id).count()
except Exception as exc:
    orm = repr(exc)
close_old_connections()
killed += kill()
after = call(client, list_mailboxes, token=token).status_code
print(json.dumps({"pool": bool(connection.pool), "before": before, "killed": killed, "orm": orm, "after": after}))
"""


@pytest.mark.parametrize("pooled", [True, False], ids=["pool", "persistent connections"])
def test_queries_and_requests_after_every_backend_was_killed_succeed(owner, pooled):
    db = connection.settings_dict
    name = f"qm-restart-{os.getpid()}-{int(pooled)}"
    url = (f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
           f"?application_name={name}")
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "qmailing.settings",
           "DATABASE_POOL": "true" if pooled else "false", "DATABASE_CONN_MAX_AGE": "0" if pooled else "60"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(owner.pk), token_for(owner), name],
                          cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    print(outcome)
    assert outcome["pool"] is pooled
    assert outcome["before"] == 200 and outcome["killed"] >= 2
    assert outcome["orm"] == 1 and outcome["after"] == 200
