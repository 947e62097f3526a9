from celery import shared_task

from audit.sealing import seal_all


@shared_task
def seal_audit_events() -> int:
    """Seal new audit events; run by beat every few seconds."""
    return seal_all()


@shared_task
def sign_checkpoint() -> int | None:
    """Sign the chain's end as a checkpoint (beat, every few minutes); returns its sequence."""
    from audit.checkpoints import make_checkpoint

    checkpoint = make_checkpoint()
    return checkpoint.sequence if checkpoint else None


@shared_task
def run_export_job(job_id: int) -> str:
    """Write a large export's file and manifest (queued from the export page)."""
    from audit.export_jobs import run

    return run(job_id).status


@shared_task
def archive_expired_months() -> list[str]:
    """Archive the months past ``AUDIT_RETENTION_MONTHS`` (beat, daily); nothing while it is unset."""
    from audit.archive import archive_expired

    return [f"{archive.month:%Y-%m}" for archive in archive_expired()]


@shared_task
def refresh_rollups() -> int:
    """Bring the hourly usage rollups up to date (beat, every ``ROLLUP_SECONDS``); returns hours rebuilt."""
    from audit.rollups import refresh

    return refresh()
