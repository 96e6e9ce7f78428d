"""A PostgreSQL restart costs no request an error: pooled connections are checked before they are handed out.

A restart (or a failover, or an idle-connection reaper) kills the server side of every pooled connection;
without a check the pool hands each dead one out once, and that request fails. The test kills them the
way a restart does, with pg_terminate_backend from a connection of its own.
"""

import psycopg
import pytest
from django.db import close_old_connections, connection
from django.test import Client

from accounts.models import Account
from qmailing.operations import registry
from tests.api_helpers import call, token_for

# Transactional: the kill must reach connections resting in the pool, not one held in the test's transaction;
# serialized_rollback keeps the seeded plans through the flush.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _terminate_every_other_backend():
    """Kill every connection to the test database but the one doing the killing; how many were killed."""
    db = connection.settings_dict
    with psycopg.connect(dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"],
                         port=db["PORT"] or None, autocommit=True) as killer:
        rows = killer.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return sum(1 for (killed,) in rows if killed)


def _end_of_request():
    """What the server does when a request ends (request_finished): the connection goes back to the pool, or,
    without one, stays open for the next request (DATABASE_CONN_MAX_AGE). The test client skips it so that
    tests keep their transaction."""
    close_old_connections()


def test_an_orm_query_after_every_backend_was_killed_succeeds(owner):
    Account.objects.count()
    _end_of_request()
    killed = _terminate_every_other_backend()
    print(f"{'pool' if connection.pool else 'no pool'}: killed {killed} backend(s)")
    assert killed >= 1
    assert Account.objects.filter(pk=owner.pk).count() == 1


def test_a_rest_read_after_every_backend_was_killed_answers_200(owner):
    client = Client()
    list_mailboxes = registry()["qmailing_list_mailboxes"]
    token = token_for(owner)
    _end_of_request()
    assert call(client, list_mailboxes, token=token).status_code == 200
    _end_of_request()
    killed = _terminate_every_other_backend()
    print(f"{'pool' if connection.pool else 'no pool'}: killed {killed} backend(s)")
    assert killed >= 1
    response = call(client, list_mailboxes, token=token)
    print(f"after the kill: {response.status_code}")
    assert response.status_code == 200, response.content
