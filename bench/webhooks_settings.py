"""Settings of the webhook benchmark (bench/webhooks.py) and of the Celery workers it starts: the product's settings,
with Celery's tasks on a queue of the run's own (QMAILING_BENCH_QUEUE), so a run never takes, or leaves behind,
messages of anything else that shares the Redis db. Only the benchmark uses this module; nothing else changes.
"""

import os

from qmailing.settings import *  # noqa: F401,F403

CELERY_TASK_DEFAULT_QUEUE = os.environ["QMAILING_BENCH_QUEUE"]
QMAILING_WEBHOOK_QUEUE = CELERY_TASK_DEFAULT_QUEUE
CELERY_TASK_ROUTES = {"webhooks.tasks.webhook_deliver_task": {"queue": QMAILING_WEBHOOK_QUEUE}}
