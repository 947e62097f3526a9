from celery import shared_task

from audit.sealing import seal_all


@shared_task
def seal_audit_events() -> int:
    """Seal new audit events; run by beat every few seconds."""
    return seal_all()
