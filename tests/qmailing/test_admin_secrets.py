"""No admin list lookup may touch a secret column: counts would read it one character at a time."""

import pytest
from django.contrib import admin
from django.test import RequestFactory

from accounts.models import User
from domains.services import domain_add

@pytest.fixture
def staff_client(client, owner):
    user = owner.users.get()
    User.objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
    client.force_login(User.objects.get(pk=user.pk))
    return client


@pytest.mark.parametrize("url", [
    "/admin/domains/domain/?dkim_private_key__startswith=-----BEGIN",
    "/admin/domains/domain/?dkim_private_key__contains=M",
    "/admin/mailboxes/mailbox/?domain__dkim_private_key__contains=M",
    "/admin/accounts/user/?password__startswith=pbkdf2",
    "/admin/accounts/account/?users__password__startswith=pbkdf2",
    "/admin/mailboxes/forwardingconfirmation/?token_hash__startswith=a",
])
def test_filtering_a_list_by_a_secret_column_is_refused_over_http(staff_client, owner, url):
    domain_add(account=owner, name="brand.example")
    response = staff_client.get(url)
    assert response.status_code == 400
    assert b"BEGIN" not in response.content and b"pbkdf2" not in response.content


def test_ordinary_filters_still_work(staff_client, owner):
    domain_add(account=owner, name="brand.example")
    assert staff_client.get("/admin/domains/domain/?status__exact=pending").status_code == 200


def _secret_paths(model):
    """Lookups that reach a secret column from this model: its own, and one relation away."""
    paths = [f"{name}__startswith" for name in getattr(model, "secret_fields", ())]
    for field in model._meta.get_fields():
        related = getattr(field, "related_model", None)
        if related is not None and not isinstance(related, str):
            name = field.field.related_query_name() if field.auto_created and not field.concrete else field.name
            paths += [f"{name}__{secret}__startswith" for secret in getattr(related, "secret_fields", ())]
    return paths


@pytest.mark.parametrize("model_admin", list(admin.site._registry.values()), ids=lambda m: type(m).__name__)
def test_every_registered_admin_refuses_secret_lookups(model_admin):
    """Fails for a new admin that forgets NoSecretLookups, or searches a secret column."""
    request = RequestFactory().get("/")
    for path in _secret_paths(model_admin.model):
        assert not model_admin.lookup_allowed(path, "x", request), (type(model_admin).__name__, path)
    for name in model_admin.search_fields:
        assert not any(secret in name for secret in ("dkim_private_key", "password", "token_hash"))


def test_the_registry_walk_sees_the_secret_columns():
    from domains.models import Domain
    from mailboxes.models import Mailbox

    assert "dkim_private_key__startswith" in _secret_paths(Domain)
    assert "domain__dkim_private_key__startswith" in _secret_paths(Mailbox)
