"""Fixtures for the CLI verbs: the jobs layer's queues, databases and tiny chains (the verbs drive
the same queue the app does), shared from tests/jobs/conftest.py rather than copied."""
from __future__ import annotations

from tests.jobs.conftest import chains_file, db_url, home, make_queue, one_thread_workers  # noqa: F401
