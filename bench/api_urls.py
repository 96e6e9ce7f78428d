"""The benchmark's urlconf: the product's URLs, plus one plain view for bench/api.py to compare against.

`/bench/plain/mailboxes` answers the JSON `GET /api/v1/pub/mailboxes` answers, for the benchmark's
account (QMAILING_BENCH_ACCOUNT_ID), through the same selector and output model, as a plain Django view:
no token, gates, request log or DRF. It is mounted only here, never in qmailing/urls.py.
"""

import os

from django.http import JsonResponse
from django.urls import path

from accounts.models import Account
from mailboxes.operations import MailboxPage
from mailboxes.selectors import mailbox_page
from agent.operations import PageInput
from qmailing.urls import urlpatterns as product_urlpatterns

PLAIN_PATH = "bench/plain/mailboxes"


def plain_mailboxes(request):
    account = Account.objects.get(pk=os.environ["QMAILING_BENCH_ACCOUNT_ID"])
    page = mailbox_page(account=account, cursor=None, limit=PageInput().limit)
    body = MailboxPage.model_validate(page).model_dump(mode="json")
    # DRF's JSONRenderer writes compact JSON; so does this, so both bodies have the same bytes.
    return JsonResponse(body, json_dumps_params={"separators": (",", ":"), "ensure_ascii": False})


urlpatterns = [path(PLAIN_PATH, plain_mailboxes), *product_urlpatterns]
