"""The page's timers tick only where someone looks and only while something they show can change
(issue 20 point 2), seen in headless Chromium: while a training job runs, the Train tab's status
is polled only while that tab is shown, a hidden tab's timers never reach the server, and once
the job has ended the shown tab stops polling."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from core.data.chains import save_chains_jsonl
from jobs.records import JobKind, JobStatus
from tests.app.conftest import wait_job
from tests.app.browser import open_tab
from tests.conftest import short_chains

playwright = pytest.importorskip("playwright.sync_api")
#: The handlers behind the timers of the Train, Jobs and System tabs (2 s, 2 s and 5 s).
POLLED = ("training_monitor", "jobs", "system")
WINDOW_S = 6.0  # three ticks of a 2 s timer


class CallCounter:
    """Counts calls of some Services methods (the handlers' database work), thread-safe."""

    def __init__(self, services, names: tuple[str, ...]) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        for name in names:
            setattr(services, name, self._counted(name, getattr(services, name)))

    def _counted(self, name: str, method):
        def call(*args, **kwargs):
            with self._lock:
                self.counts[name] += 1
            return method(*args, **kwargs)
        return call

    def wait_for_calls(self, *names: str, timeout: float = 60.0) -> None:
        """Until each of `names` was called once (the page's load events have landed)."""
        deadline = time.monotonic() + timeout
        while not all(self.counts[name] for name in names):
            assert time.monotonic() < deadline, f"the page never loaded: calls {dict(self.counts)}"
            time.sleep(0.2)

    def over(self, seconds: float) -> Counter[str]:
        """The calls made during the next `seconds` (after letting calls in flight land)."""
        time.sleep(1.0)
        with self._lock:
            self.counts.clear()
        time.sleep(seconds)
        with self._lock:
            return Counter(self.counts)


@pytest.fixture
def running_training(studio, tmp_path):
    chains = tmp_path / "chains.jsonl"
    save_chains_jsonl(short_chains(8), chains)
    settings = {"max_steps": 100_000, "batch_size": 2, "micro_batch_size": 1, "mixed_precision": "no",
                "checkpoint_every": 0}
    config = {"mote": {"model": str(studio.tiny_dir), "experts": {"rank": 4, "lora_alpha": 8.0},
                       "data": {"max_length": 256}, "train": settings}, "chains": str(chains)}
    job_id = studio.queue.submit(JobKind.TRAIN, config)
    wait_job(studio.queue, job_id, lambda j: j.status is JobStatus.RUNNING, what="to start")
    yield job_id
    if not studio.queue.get(job_id).status.finished:
        studio.queue.cancel(job_id)
        wait_job(studio.queue, job_id, timeout=60)


def test_only_the_shown_tab_polls_and_only_while_a_job_runs(browser, studio, running_training):  # noqa: F811
    counter = CallCounter(studio.services, POLLED)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(studio.url)
        counter.wait_for_calls(*POLLED)  # demo.load fills the Jobs, System and Train tabs once
        hidden = counter.over(WINDOW_S)  # the Data tab is shown: it watches generation only
        assert sum(hidden.values()) == 0, f"hidden tabs' timers reached the server: {dict(hidden)}"

        open_tab(page, "Train")
        shown = counter.over(WINDOW_S)
        assert shown["training_monitor"] >= 2, f"the shown Train tab did not poll its running job: {dict(shown)}"
        assert shown["jobs"] == shown["system"] == 0, f"hidden tabs' timers reached the server: {dict(shown)}"

        open_tab(page, "Chat")  # a tab without timers: every timer stops
        elsewhere = counter.over(WINDOW_S)
        assert sum(elsewhere.values()) == 0, f"timers kept ticking behind the Chat tab: {dict(elsewhere)}"

        open_tab(page, "Train")
        studio.queue.cancel(running_training)
        wait_job(studio.queue, running_training, timeout=60)
        time.sleep(12.0)  # the ended-job grace (10 s): the last refreshes show how it ended
        idle = counter.over(WINDOW_S)
        assert idle["training_monitor"] == 0, f"the Train tab kept polling with nothing running: {dict(idle)}"
    finally:
        page.close()


def test_kinds_in_motion_counts_queued_running_and_just_ended_jobs(tmp_path):
    from app.services import Services
    from jobs.queue import JobQueue

    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")  # not started: jobs stay queued
    try:
        services = Services(queue)
        assert services.kinds_in_motion(10.0) == frozenset()
        job_id = queue.submit(JobKind.TRAIN, {"mote": {"model": "smollm2-135m-instruct", "train": {"max_steps": 1}}})
        assert services.kinds_in_motion(10.0) == {JobKind.TRAIN}
        queue.cancel(job_id)  # ended now: still moving within the grace, not after it
        assert services.kinds_in_motion(10.0) == {JobKind.TRAIN}
        time.sleep(0.2)
        assert services.kinds_in_motion(0.1) == frozenset()
    finally:
        queue.engine.dispose()
