"""404s are the product's own page, in debug too: Django's debug 404 lists every URL pattern."""

import pytest
from django.http import Http404
from django.urls import path, reverse

from qmailing import urls as project_urls


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def test_unknown_page_gets_the_product_404_without_url_patterns(client, db, debug):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page and "There is no page at this address" in page
    for leak in ("URLconf", "admin/", "settings/developers", "Using the URLconf", "api/v1"):
        assert leak not in page


def test_signed_in_user_gets_the_same_page(client, owner, debug):
    client.force_login(owner.users.get())
    response = client.get("/domains/not-a-uuid/")
    assert response.status_code == 404 and "<h1>Not found</h1>" in response.content.decode()
    assert "URLconf" not in response.content.decode()


def _raising_view(request):
    raise Http404("secret detail from the view")


urlpatterns = [path("raise-404/", _raising_view), *project_urls.urlpatterns]


@pytest.mark.urls("tests.qmailing.test_not_found")
def test_a_view_raising_http404_gets_the_product_page(client, db, debug):
    response = client.get("/raise-404/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page and "URLconf" not in page and "secret detail" not in page


def test_signed_download_links_keep_their_json_404(client, db, debug):
    response = client.get("/dl/attachments/not-a-token")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/")


def test_view_own_404_detail_is_kept(client, owner, debug):
    client.force_login(owner.users.get())
    response = client.get(reverse("domains:detail", args=["00000000-0000-0000-0000-000000000000"]))
    assert response.status_code == 404 and "No domain with this id exists in your account." in response.content.decode()


def test_api_keeps_its_json_404(client, db, debug):
    response = client.get("/api/v1/pub/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


def test_append_slash_redirect_still_happens(client, db, debug):
    response = client.get("/accounts/signin")
    assert response.status_code == 301 and response.url == "/accounts/signin/"
