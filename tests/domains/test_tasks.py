from domains.models import Domain
from domains.services import domain_add
from domains.tasks import domains_verify_slot_task


def test_beat_fans_out_one_verification_per_domain_of_this_minute(owner, dns_server, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from qmailing.celery import app

    app.conf.task_always_eager = True
    try:
        domains = [domain_add(account=owner, name=f"d{i}.example") for i in range(3)]
        target = domains[0]
        others_in_slot = Domain.objects.filter(check_slot=target.check_slot, is_shared=False)
        assert domains_verify_slot_task(minute=target.check_slot) == others_in_slot.count()
        target.refresh_from_db()
        assert target.last_checked_at is not None
        for other in domains[1:]:
            other.refresh_from_db()
            assert (other.last_checked_at is not None) == (other.check_slot == target.check_slot)
    finally:
        app.conf.task_always_eager = False


def test_slots_spread_domains_across_the_hour(owner, settings):
    settings.QMAILING_DNS_RESOLVERS = ["127.0.0.1:9"]
    from accounts.services import account_set_plan

    account_set_plan(account=owner, plan_code="PRO_MAX")
    slots = {domain_add(account=owner, name=f"spread{i}.example").check_slot for i in range(40)}
    assert len(slots) > 15  # uniform ids: 40 domains fall in many different minutes
    assert all(0 <= slot < 60 for slot in slots)

