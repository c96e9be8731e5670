"""The control plane's background loop: publish what the broker never took, reap lapsed leases.

Runs in every API process (``create_app`` starts it); all of its writes are
compare-and-set, so several API replicas can run it at once.
"""

from __future__ import annotations

import logging
import threading

from llmforge.errors import Unavailable
from llmforge.platform import queue
from llmforge.platform.db import session_scope
from llmforge.platform.jobs import service
from llmforge.settings import Settings

log = logging.getLogger(__name__)


def tick(settings: Settings) -> dict[str, int]:
    """One pass; returns counts (for tests and logs)."""
    with session_scope(settings.database_url) as s:
        reaped = service.reap(s)
    for job_id, status in reaped:
        log.warning("job %s: lease lapsed -> %s", job_id, status)
    with session_scope(settings.database_url) as s:
        due = service.due_for_publish(s, settings.redispatch_after)
    published = 0
    for job_id, q in due:
        try:
            queue.publish(settings, job_id, q)
        except Unavailable as exc:
            log.warning("broker unavailable, %d job(s) wait to be published: %s", len(due) - published, exc)
            break
        with session_scope(settings.database_url) as s:
            service.mark_published(s, job_id)
        published += 1
    return {"reaped": len(reaped), "published": published}


class MaintenanceLoop(threading.Thread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(name="llmforge-maintenance", daemon=True)
        self.settings = settings
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.settings.reaper_interval):
            try:
                tick(self.settings)
            except Exception:  # keep going: the next pass may succeed (DB restarting, etc.)
                log.exception("maintenance pass failed")

    def stop(self) -> None:
        self.stopped.set()
