"""The job system: one table, one lifecycle, one REST surface, executed by Celery.

    queued ──claim──▶ running ──▶ succeeded | failed | cancelled
      ▲                  │
      └──lease lapsed────┘   (re-queued while attempts remain, else failed)

- ``registry``  job kinds: a name, a pydantic spec model, a handler, a queue
- ``service``   every state change, each a compare-and-set UPDATE on the row
- ``context``   what a handler gets: logs, metrics, lineage, cancellation, subprocesses
- ``runner``    what a worker does with a delivery: claim, heartbeat, run, complete
- ``maintenance`` the control plane's loop: re-publish undelivered jobs, reap lapsed leases
"""

from llmforge.platform.jobs.context import JobCancelled, JobContext
from llmforge.platform.jobs.registry import JobKind, get_kind, job_kind, kinds

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")

__all__ = ["JobCancelled", "JobContext", "JobKind", "STATUSES", "TERMINAL", "get_kind", "job_kind", "kinds"]
