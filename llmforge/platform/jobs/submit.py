"""Submit = commit a queued row, then publish. Shared by the jobs API and every service router."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from llmforge.errors import Unavailable
from llmforge.platform import queue
from llmforge.platform.auth import Principal
from llmforge.platform.jobs import service
from llmforge.platform.models import Job, now
from llmforge.settings import Settings

log = logging.getLogger(__name__)


def submit_job(session: Session, settings: Settings, principal: Principal, *, project_id: str, kind: str,
               spec: dict[str, Any], queue_name: str | None = None, max_attempts: int | None = None,
               parent_id: str | None = None) -> Job:
    """Validate and commit the job before publishing; a broker outage leaves it queued for the dispatcher."""
    principal.require(project_id, "editor")
    job = service.create_job(session, project_id=project_id, kind=kind, spec=spec, created_by=principal.key_id,
                             queue=queue_name, max_attempts=max_attempts or settings.max_attempts, parent_id=parent_id)
    # Optimistically marked published in the same commit (one write instead of two on the hot path).
    # If the publish fails we clear the mark so the dispatcher re-sends at once; if this process dies
    # between commit and publish, the dispatcher re-sends after LLMFORGE_REDISPATCH_AFTER.
    job.published_at, job.publish_count = now(), 1
    session.commit()
    try:
        queue.publish(settings, job.id, job.queue)
    except Unavailable as exc:
        log.warning("job %s accepted but not yet published: %s", job.id, exc)
        service.unmark_published(session, job.id)
        session.commit()
        job.published_at, job.publish_count = None, 0
    return job
