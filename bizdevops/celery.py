from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bizdevops.settings")

app = Celery("bizdevops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
