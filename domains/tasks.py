from celery import shared_task
from django.utils import timezone

from domains.models import Domain
from domains.selectors import domains_in_slot
from domains.services import domain_verify


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def domain_verify_task(domain_id):
    domain = Domain.objects.filter(pk=domain_id).select_related("account").first()
    if domain is not None:
        domain_verify(domain=domain)


@shared_task
def domains_verify_slot_task(minute=None):
    """Beat runs this every minute; it fans out one verification per domain whose slot is this minute."""
    slot = timezone.now().minute if minute is None else int(minute)
    ids = [str(domain_id) for domain_id in domains_in_slot(slot=slot)]
    for domain_id in ids:
        domain_verify_task.delay(domain_id)
    return len(ids)
