"""Django's debug page and error reports never show a credential (core.error_reports)."""

import secrets
import sys

import pytest
from django.test import Client, RequestFactory
from django.urls import path
from django.views.debug import get_default_exception_reporter_filter

from core.error_reports import CredentialMaskingFilter, mask_credentials

# Made at run time: the debug page shows this file's source around the raising line, and that is no leak.
DB_PASSWORD, REDIS_PASSWORD, BROKER_PASSWORD, SMTP_PASSWORD, FORM_PASSWORD = (secrets.token_hex(8) for _ in range(5))
ALL_PASSWORDS = (DB_PASSWORD, REDIS_PASSWORD, BROKER_PASSWORD, SMTP_PASSWORD, FORM_PASSWORD)


def boom(request):
    connection_kwargs = {"host": "db.internal", "password": DB_PASSWORD}  # noqa: F841 - shown among the frame's variables
    dsn = f"host=db.internal user=app password={DB_PASSWORD}"  # noqa: F841
    raise RuntimeError("the database went away")


urlpatterns = [path("boom/", boom)]


@pytest.fixture
def credentials_in_settings(settings):
    settings.DATABASE_URL = f"postgres://app:{DB_PASSWORD}@db.internal:5432/qmailing"
    settings.REDIS_URL = f"redis://:{REDIS_PASSWORD}@cache.internal:6379/0"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [settings.REDIS_URL]}}}
    settings.CELERY_BROKER_URL = f"amqp://app:{BROKER_PASSWORD}@broker.internal//"
    settings.EMAIL_HOST_PASSWORD = SMTP_PASSWORD
    settings.SOME_UPSTREAM = f"https://app:{BROKER_PASSWORD}@upstream.internal/"  # a name that says nothing


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_debug_500_page_shows_no_credentials(settings, credentials_in_settings, accept, db):
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    response = client.post("/boom/", {"email": "a@example.com", "password": FORM_PASSWORD}, HTTP_ACCEPT=accept,
                           DATABASE_URL=settings.DATABASE_URL)  # an environment variable, as WSGI puts it in META
    page = response.content.decode()
    assert response.status_code == 500
    assert "the database went away" in page and "@cache.internal:6379" in page  # the debug page, settings and all
    for password in ALL_PASSWORDS:
        assert password not in page, password


def test_the_filter_is_the_default():
    assert isinstance(get_default_exception_reporter_filter(), CredentialMaskingFilter)


def test_filter_masks_settings_by_name_and_by_value(credentials_in_settings):
    safe = CredentialMaskingFilter().get_safe_settings()
    text = repr(safe)
    for password in (DB_PASSWORD, REDIS_PASSWORD, BROKER_PASSWORD, SMTP_PASSWORD):
        assert password not in text
    assert safe["SOME_UPSTREAM"] == "https://app:********************@upstream.internal/"
    assert safe["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == ["redis://:********************@cache.internal:6379/0"]
    assert safe["DATABASE_URL"] == "********************"


def test_filter_masks_request_meta_post_and_frame_variables(settings):
    settings.DEBUG = True  # Django's own filter does nothing then; ours still does
    request = RequestFactory().post("/", {"password": FORM_PASSWORD, "note": f"redis://:{REDIS_PASSWORD}@h"},
                                    HTTP_X_UPSTREAM=f"https://u:{BROKER_PASSWORD}@x", REDIS_URL="redis://h")
    report_filter = CredentialMaskingFilter()
    meta = report_filter.get_safe_request_meta(request)
    assert BROKER_PASSWORD not in repr(meta) and meta["REDIS_URL"] == "********************"
    post = report_filter.get_post_parameters(request)
    assert post["password"] == "********************" and REDIS_PASSWORD not in post["note"]

    def connect():
        conninfo = f"host=db password='{DB_PASSWORD}'"  # noqa: F841
        kwargs = {"password": DB_PASSWORD, "options": [f"postgres://u:{DB_PASSWORD}@h"]}  # noqa: F841
        api_token = "tok"  # noqa: F841
        form_data = request.POST  # noqa: F841
        raise ValueError

    try:
        connect()
    except ValueError:
        frame = sys.exc_info()[2].tb_next.tb_frame
    variables = dict(report_filter.get_traceback_frame_variables(request, frame))
    assert DB_PASSWORD not in repr(variables) and FORM_PASSWORD not in repr(variables)
    assert variables["api_token"] == "********************"


@pytest.mark.parametrize("text, masked", [
    ("postgres://app:pw@db:5432/q", "postgres://app:********************@db:5432/q"),
    ("redis://:pw@cache:6379/0", "redis://:********************@cache:6379/0"),
    ("rediss://:p@ss/word@cache:6379", "rediss://:********************@cache:6379"),
    ("https://publickey@sentry.example/1", "https://********************@sentry.example/1"),
    ("host=db user=app password='a b' dbname=q", "host=db user=app password=******************** dbname=q"),
    ("https://api.example/?a=1&api_key=zzz", "https://api.example/?a=1&api_key=********************"),
    ("http://localhost:8000/docs/errors", "http://localhost:8000/docs/errors"),
    ("filesystem://", "filesystem://"),
])
def test_mask_credentials(text, masked):
    assert mask_credentials(text) == masked
