"""Settings → Webhooks over HTTP: list and health, register (secret once), the delivery log, actions, plan and ownership."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Plan
from accounts.services import account_set_plan
from events.services import event_publish
from webhooks.delivery import Response, delivery_attempt, endpoint_disable
from webhooks.models import WEBHOOK_EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from webhooks.secrets import secret_decrypt
from webhooks.services import webhook_register
from tests.browser import needs_chromium
from webhooks.views import LOG_PAGE_SIZE

NONCES_KEY = "nonces:webhook_secret"  # qmailing.web.nonce_issue(request, "webhook_secret")

INDEX = "/settings/webhooks/"
REGISTER = "/settings/webhooks/new/"
SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/=]{40,}")


@pytest.fixture
def pro(owner):
    account_set_plan(account=owner, plan_code=Plan.PRO)
    return owner


@pytest.fixture
def signed_in(client, pro):
    client.force_login(pro.users.get())
    return client


@pytest.fixture
def public_host(dns_server):
    dns_server.add("hooks.example.com", "A", "93.184.215.14")
    return "hooks.example.com"


@pytest.fixture
def endpoint(pro, public_host):
    endpoint, _ = webhook_register(account=pro, url="https://hooks.example.com/in", event_types=["email.received"],
                                   description="CRM sync")
    return endpoint


def _nonce(page):
    return re.search(r'name="nonce" value="([^"]+)"', page).group(1)


def _register(client, **data):
    page = client.get(REGISTER)
    assert page.status_code == 200, page.content
    form = {"url": "https://hooks.example.com/in", "description": "CRM sync", "event_types": ["email.received"],
            "nonce": _nonce(page.content.decode())}
    form.update(data)
    return client.post(REGISTER, form)


def _delivery(endpoint, *, subject="Hello", answer=None):
    """An email.received delivery to `endpoint`, attempted once against a fake receiver answering `answer`."""
    event_publish(account=endpoint.account, type="email.received", payload={"email_id": "e1", "subject": subject})
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-created_at").first()
    if answer is not None:
        delivery_attempt(delivery.pk, send=lambda target, body, headers, now: answer)
        delivery.refresh_from_db()
    return delivery


def _url(name, endpoint, delivery=None):
    args = [endpoint.pk] + ([delivery.pk] if delivery is not None else [])
    return reverse(f"webhooks:{name}", args=args)


def _one_h1(page):
    return len(re.findall(r"<h1[ >]", page)) == 1 and "<title>" in page


# --- the list ------------------------------------------------------------------------------------------------------

def test_empty_list_says_what_webhooks_are_for_and_how_to_add_one(signed_in):
    response = signed_in.get(INDEX)
    page = response.content.decode()
    assert response.status_code == 200 and _one_h1(page)
    assert "No webhook endpoints yet" in page and "signed HTTPS POST" in page
    assert f'href="{REGISTER}"' in page
    assert f'href="{INDEX}"' in signed_in.get("/").content.decode()  # the nav link


def test_list_shows_each_endpoint_with_status_events_and_health(signed_in, endpoint):
    _delivery(endpoint, answer=Response(status=204, address="93.184.215.14"))
    _delivery(endpoint, answer=Response(status=503, snippet="down", address="93.184.215.14"))
    page = signed_in.get(INDEX).content.decode()
    assert "https://hooks.example.com/in" in page and "CRM sync" in page and "email.received" in page
    assert "Active" in page and "No webhook endpoints yet" not in page
    assert re.search(r"Last success</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    assert re.search(r"Last failure</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    assert "Failures in a row</dt><dd>1" in page
    # one delivery succeeded, the failed one is still being retried: the rate counts finished deliveries only
    assert "100% <span class=\"muted\">of 1 finished delivery from the last 7 days" in page
    WebhookDelivery.objects.filter(endpoint=endpoint, status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED, completed_at=timezone.now())
    assert "50% <span class=\"muted\">of 2 finished deliveries from the last 7 days" in signed_in.get(INDEX).content.decode()


def test_a_disabled_endpoint_shows_why(signed_in, endpoint):
    endpoint_disable(endpoint=endpoint, reason="The receiver answered 410 Gone: it asked for no more deliveries.")
    page = signed_in.get(INDEX).content.decode()
    assert "Disabled" in page and "410 Gone" in page


# --- registering ---------------------------------------------------------------------------------------------------

def test_register_form_lists_every_event_type_with_an_explanation(signed_in):
    page = signed_in.get(REGISTER).content.decode()
    assert _one_h1(page)
    for event_type in WEBHOOK_EVENT_TYPES:
        assert re.search(rf'value="{re.escape(event_type)}"[^>]*>\s*<span><code>{re.escape(event_type)}</code> '
                         r'<span class="muted">— \w', page), event_type
    assert 'value="*"' in page and "All events" in page
    assert 'for="id_url"' in page and 'for="id_description"' in page


def test_register_shows_the_secret_once_and_never_again(signed_in, pro, public_host):
    response = _register(signed_in, event_types=["email.received", "email.bounced"])
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    secrets = set(SECRET_RE.findall(page))
    assert len(secrets) == 1
    secret = secrets.pop()
    endpoint = WebhookEndpoint.objects.get(account=pro)
    assert secret_decrypt(endpoint.secret_encrypted) == secret
    assert endpoint.event_types == ["email.received", "email.bounced"] and endpoint.description == "CRM sync"
    assert 'data-copy="webhook-secret"' in page and "Verify the signature" in page and "webhook-signature" in page
    assert "https://" not in page.replace("https://hooks.example.com/in", "")  # links to nothing external
    assert secret not in json.dumps(dict(signed_in.session))
    assert secret not in signed_in.get(INDEX).content.decode()
    assert secret not in signed_in.get(_url("detail", endpoint)).content.decode()


def test_reposting_the_register_form_registers_and_shows_nothing(signed_in, pro, public_host):
    page = signed_in.get(REGISTER).content.decode()
    data = {"url": "https://hooks.example.com/in", "event_types": ["*"], "nonce": _nonce(page)}
    assert signed_in.post(REGISTER, data).status_code == 200
    again = signed_in.post(REGISTER, data, follow=True)
    assert SECRET_RE.search(again.content.decode()) is None and "already used" in again.content.decode()
    assert WebhookEndpoint.objects.filter(account=pro).count() == 1


@pytest.mark.parametrize("url, message", [
    ("http://hooks.example.com/in", "must use https"),
    ("https://10.0.0.1/hook", "not a public internet address"),
    ("https://inside.example.com/hook", "not a public internet address"),
])
def test_refused_urls_show_the_error_on_the_form_and_keep_the_input(signed_in, pro, dns_server, url, message):
    dns_server.add("inside.example.com", "A", "192.168.1.5")
    response = _register(signed_in, url=url, description="Keep <me>", event_types=["email.sent", "domain.verified"])
    page = response.content.decode()
    assert response.status_code == 400
    assert message in page and 'class="field has-error"' in page
    assert f'value="{url}"' in page and 'value="Keep &lt;me&gt;"' in page
    assert re.search(r'value="email.sent"[^>]*checked', page) and re.search(r'value="domain.verified"[^>]*checked', page)
    assert not re.search(r'value="email.received"[^>]*checked', page)
    assert SECRET_RE.search(page) is None and not WebhookEndpoint.objects.filter(account=pro).exists()


def test_the_form_comes_back_with_a_fresh_nonce_after_an_error(signed_in, pro, public_host):
    refused = _register(signed_in, url="https://10.0.0.1/hook")
    assert refused.status_code == 400
    retried = signed_in.post(REGISTER, {"url": "https://hooks.example.com/in", "event_types": ["email.sent"],
                                        "nonce": _nonce(refused.content.decode())})
    assert retried.status_code == 200 and SECRET_RE.search(retried.content.decode())


def test_no_event_type_chosen_is_a_form_error(signed_in, pro, public_host):
    response = _register(signed_in, event_types=[])
    assert response.status_code == 400 and "Choose at least one event type." in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def _upgrade_link(page):
    """The plan message, with its link to the plan page right after it (the nav's Plan link does not count)."""
    return re.search(r'Webhooks are part of the Pro plan[^<]*<a href="%s">' % re.escape(reverse("plan")), page)


def test_a_free_account_sees_the_upgrade_message_and_cannot_register(client, free_account, public_host):
    client.force_login(free_account.users.get())
    index = client.get(INDEX).content.decode()
    assert _upgrade_link(index)
    assert f'href="{REGISTER}"' not in index
    form_page = client.get(REGISTER).content.decode()
    assert _upgrade_link(form_page) and 'name="url"' not in form_page
    session = client.session
    session[NONCES_KEY] = ["forged-form"]
    session.save()
    response = client.post(REGISTER, {"url": "https://hooks.example.com/in", "event_types": ["email.received"],
                                      "nonce": "forged-form"})
    page = response.content.decode()
    assert response.status_code == 400
    assert _upgrade_link(page) and 'value="https://hooks.example.com/in"' in page
    assert not WebhookEndpoint.objects.filter(account=free_account).exists()


# --- the endpoint page ---------------------------------------------------------------------------------------------

def test_delivery_log_shows_escaped_bounded_snippets(signed_in, endpoint):
    delivery = _delivery(endpoint, subject="<img src=x onerror=alert(1)>",
                         answer=Response(status=500, snippet="<script>alert('x')</script>" + "y" * 3000,
                                         address="93.184.215.14"))
    response = signed_in.get(_url("detail", endpoint))
    page = response.content.decode()
    assert response.status_code == 200 and _one_h1(page)
    assert "<details>" in page and "email.received" in page and "HTTP 500" in page and "1 attempt<" in page
    assert delivery.message_id in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "y" * 1001 not in page  # the answer is bounded


def test_delivery_log_pages_newest_first(signed_in, endpoint):
    for number in range(LOG_PAGE_SIZE + 1):
        _delivery(endpoint, subject=f"Subject {number}")
    first = signed_in.get(_url("detail", endpoint)).content.decode()
    assert first.count("<details>") == LOG_PAGE_SIZE and "Subject 0&quot;" not in first
    assert first.index(f"Subject {LOG_PAGE_SIZE}&quot;") < first.index(f"Subject {LOG_PAGE_SIZE - 1}&quot;")
    older = re.search(r'href="(\?cursor=[^"]+)">Older', first).group(1)
    second = signed_in.get(_url("detail", endpoint) + older.replace("&amp;", "&")).content.decode()
    assert second.count("<details>") == 1 and "Subject 0&quot;" in second and ">Newest<" in second
    bad = signed_in.get(_url("detail", endpoint) + "?cursor=not-a-cursor")
    assert bad.status_code == 302 and signed_in.get(bad.url).status_code == 200


def test_redeliver_one_delivery(signed_in, endpoint):
    delivery = _delivery(endpoint, answer=Response(status=200, address="93.184.215.14"))
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    response = signed_in.post(_url("redeliver", endpoint, delivery), follow=True)
    assert response.redirect_chain[-1][0] == _url("detail", endpoint)
    assert "Queued the email.received delivery again" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.attempts == 0


def test_redeliver_failed_since_takes_only_failed_and_cancelled_ones_in_the_period(signed_in, endpoint):
    succeeded = _delivery(endpoint, answer=Response(status=200, address="93.184.215.14"))
    failed = _delivery(endpoint)
    old = _delivery(endpoint)
    WebhookDelivery.objects.filter(pk__in=[failed.pk, old.pk]).update(status=WebhookDelivery.Status.FAILED,
                                                                      completed_at=timezone.now())
    WebhookDelivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    response = signed_in.post(_url("redeliver-failed", endpoint), {"hours": "24"}, follow=True)
    assert "Queued 1 delivery from the last 24 hours again." in response.content.decode()
    states = dict(WebhookDelivery.objects.values_list("pk", "status"))
    assert states == {succeeded.pk: "succeeded", failed.pk: "pending", old.pk: "failed"}
    none = signed_in.post(_url("redeliver-failed", endpoint), {"hours": "1"}, follow=True)
    assert "nothing to redeliver" in none.content.decode()


def test_enable_a_disabled_endpoint(signed_in, endpoint):
    endpoint_disable(endpoint=endpoint, reason="Every delivery failed for 5 days.")
    page = signed_in.get(_url("detail", endpoint)).content.decode()
    assert "Every delivery failed for 5 days." in page and _url("enable", endpoint) in page
    response = signed_in.post(_url("enable", endpoint), follow=True)
    assert "Enabled" in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.ACTIVE and endpoint.disabled_reason == ""
    assert _url("enable", endpoint) not in signed_in.get(_url("detail", endpoint)).content.decode()


def test_redeliver_on_a_disabled_endpoint_says_to_enable_it_first(signed_in, endpoint):
    delivery = _delivery(endpoint, answer=Response(status=200, address="93.184.215.14"))
    endpoint_disable(endpoint=endpoint, reason="Every delivery failed for 5 days.")
    response = signed_in.post(_url("redeliver", endpoint, delivery), follow=True)
    assert "Enable the endpoint before redelivering" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED


def test_rotate_shows_the_new_secret_once_and_how_long_the_old_one_stays_valid(signed_in, endpoint):
    old_secret = secret_decrypt(endpoint.secret_encrypted)
    confirm = signed_in.get(_url("rotate", endpoint))
    page = confirm.content.decode()
    assert confirm.status_code == 200 and _one_h1(page) and SECRET_RE.search(page) is None
    data = {"overlap_hours": "24", "nonce": _nonce(page)}
    response = signed_in.post(_url("rotate", endpoint), data)
    page = response.content.decode()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_secret = SECRET_RE.search(page).group(0)
    endpoint.refresh_from_db()
    assert secret_decrypt(endpoint.secret_encrypted) == new_secret != old_secret
    assert old_secret not in page
    expires = endpoint.previous_secret_expires_at
    assert timedelta(hours=23) < expires - timezone.now() <= timedelta(hours=24)
    assert f"The old secret stays valid until {expires:%Y-%m-%d %H:%M} UTC (24 hours)" in page
    assert new_secret not in signed_in.get(_url("detail", endpoint)).content.decode()
    again = signed_in.post(_url("rotate", endpoint), data, follow=True)
    assert SECRET_RE.search(again.content.decode()) is None and "already used" in again.content.decode()
    endpoint.refresh_from_db()
    assert secret_decrypt(endpoint.secret_encrypted) == new_secret


def test_revoke_asks_for_confirmation_first(signed_in, endpoint):
    confirm = signed_in.get(_url("revoke", endpoint))
    page = confirm.content.decode()
    assert confirm.status_code == 200 and "cannot be undone" in page and "csrfmiddlewaretoken" in page
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.ACTIVE
    response = signed_in.post(_url("revoke", endpoint), follow=True)
    assert response.redirect_chain[-1][0] == INDEX and "Revoked https://hooks.example.com/in" in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.REVOKED
    detail = signed_in.get(_url("detail", endpoint)).content.decode()
    assert "Revoked" in detail and _url("rotate", endpoint) not in detail


# --- ownership and request methods ---------------------------------------------------------------------------------

ACTIONS = [("detail", "get"), ("rotate", "get"), ("rotate", "post"), ("revoke", "get"), ("revoke", "post"),
           ("enable", "post"), ("redeliver-failed", "post"), ("redeliver", "post")]


@pytest.mark.parametrize("name, method", ACTIONS)
def test_another_accounts_endpoint_is_not_found_for_every_view(client, outsider, endpoint, name, method):
    account_set_plan(account=outsider, plan_code=Plan.PRO)
    client.force_login(outsider.users.get())
    delivery = _delivery(endpoint, answer=Response(status=500, address="93.184.215.14"))
    url = _url(name, endpoint, delivery if name == "redeliver" else None)
    response = getattr(client, method)(url, {"overlap_hours": "0", "hours": "24"} if method == "post" else {})
    assert response.status_code == 404
    assert "hooks.example.com" not in response.content.decode()
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.ACTIVE and delivery.attempts == 1


def test_a_delivery_of_another_endpoint_is_not_found(signed_in, pro, endpoint, outsider, dns_server):
    account_set_plan(account=outsider, plan_code=Plan.PRO)
    dns_server.add("other.example.com", "A", "93.184.215.15")
    foreign, _ = webhook_register(account=outsider, url="https://other.example.com/", event_types=["*"])
    delivery = _delivery(foreign, answer=Response(status=200, address="93.184.215.15"))
    assert signed_in.post(_url("redeliver", endpoint, delivery)).status_code == 404
    assert signed_in.get(reverse("webhooks:detail", args=["00000000-0000-0000-0000-000000000000"])).status_code == 404


@pytest.mark.parametrize("name", ["enable", "redeliver-failed", "redeliver"])
def test_actions_are_post_only(signed_in, endpoint, name):
    delivery = _delivery(endpoint, answer=Response(status=200, address="93.184.215.14"))
    assert signed_in.get(_url(name, endpoint, delivery if name == "redeliver" else None)).status_code == 405


@pytest.mark.parametrize("name", ["enable", "redeliver-failed", "redeliver", "rotate", "revoke"])
def test_actions_refuse_a_post_without_the_csrf_token(pro, endpoint, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(pro.users.get())
    delivery = _delivery(endpoint, answer=Response(status=200, address="93.184.215.14"))
    response = client.post(_url(name, endpoint, delivery if name == "redeliver" else None),
                           {"hours": "24", "overlap_hours": "0"})
    assert response.status_code == 403
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.ACTIVE and endpoint.previous_secret_expires_at is None
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    session = client.session
    session[NONCES_KEY] = ["n"]
    session.save()
    assert client.post(REGISTER, {"url": "https://hooks.example.com/x", "event_types": ["*"], "nonce": "n"}).status_code == 403


def test_a_downgraded_account_can_read_and_revoke_but_not_act(signed_in, pro, endpoint):
    delivery = _delivery(endpoint, answer=Response(status=200, address="93.184.215.14"))
    account_set_plan(account=pro, plan_code=Plan.FREE)
    page = signed_in.get(_url("detail", endpoint)).content.decode()
    assert _upgrade_link(page) and delivery.message_id in page
    response = signed_in.post(_url("redeliver", endpoint, delivery), follow=True)
    assert _upgrade_link(response.content.decode())
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert signed_in.post(_url("revoke", endpoint)).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.REVOKED


# --- a real browser at 390 px ----------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the live server's thread sees the rows
@needs_chromium
def test_every_webhook_page_fits_a_390px_screen_and_the_secret_copies(live_server, dns_server, tmp_path, settings,
                                                                      browser_page):
    import os
    from pathlib import Path

    from tests.conftest import make_user

    dns_server.add("hooks.example.com", "A", "93.184.215.14")
    user = make_user("narrow@example.org", plan="PRO")
    long_url = "https://hooks.example.com/" + "a-very-long-path-segment/" * 6 + "?token=" + "x" * 80
    endpoint, _ = webhook_register(account=user.account, url=long_url, event_types=["*"],
                                   description="A description that runs on " * 5)
    _delivery(endpoint, subject="Quarterly " + "unbroken" * 30,
              answer=Response(status=500, snippet="<html>" + "z" * 900 + "</html>", address="93.184.215.14"))
    endpoint_disable(endpoint=endpoint, reason="Every delivery failed for 5 days.")
    signed_in = Client()
    signed_in.force_login(user)
    session_key = signed_in.cookies[settings.SESSION_COOKIE_NAME].value
    shots = Path(os.environ.get("QMAILING_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    page = browser_page
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session_key, "url": base}])
    widths = {}

    def measure(name):
        widths[name] = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(shots / f"webhooks-{name}-390.png"), full_page=True)

    for name, path in {"list": INDEX, "register": REGISTER, "rotate": _url("rotate", endpoint),
                       "revoke": _url("revoke", endpoint)}.items():
        assert page.goto(base + path).status == 200, name
        measure(name)
    page.goto(base + _url("detail", endpoint))
    page.click("details summary")
    measure("detail")
    page.goto(base + REGISTER)
    page.fill("input[name=url]", "https://10.0.0.1/" + "b" * 100)
    page.click("main button[type=submit]")
    assert "not a public internet address" in page.content()
    measure("register-error")
    page.fill("input[name=url]", "https://hooks.example.com/second")
    page.click("main button[type=submit]")
    page.wait_for_selector("#webhook-secret")
    measure("secret")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.click('button[data-copy="webhook-secret"]')
    assert page.evaluate("navigator.clipboard.readText()") == page.text_content("#webhook-secret")
    assert page.text_content("#webhook-secret").startswith("whsec_")
    too_wide = {name: width for name, width in widths.items() if width > 390}
    assert not too_wide, f"pages wider than 390 px: {too_wide}"
