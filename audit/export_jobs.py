"""Large exports as background jobs: queued by an auditor, written by a Celery worker."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import export
from audit.models import ExportJob


def queue(format: str, filters: export.ExportFilters, *, user: Any) -> ExportJob:
    """Record the job and hand it to a worker once the request's transaction has committed."""
    from audit.tasks import run_export_job

    if format not in export.FORMATS:
        raise ValueError(f"format: one of {', '.join(export.FORMATS)}")
    job = ExportJob.objects.create(
        format=format,
        filters=filters.as_dict(),
        rows_total=export.seals(filters).count(),
        requested_by=user,
        requested_by_name=user.get_username(),
    )
    transaction.on_commit(lambda: run_export_job.delay(job.pk))
    return job


def run(job_id: int) -> ExportJob:
    """Write the job's file and manifest, reporting progress in its row as it goes."""
    job = ExportJob.objects.select_related("requested_by").get(pk=job_id)
    if job.status != ExportJob.Status.QUEUED:
        return job
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.RUNNING)
    directory = Path(settings.AUDIT_EXPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"audit-export-{job.pk}.{job.format}"
    filters = export.ExportFilters.from_params(job.filters)

    def progress(rows: int) -> None:
        ExportJob.objects.filter(pk=job.pk).update(rows_done=rows)

    try:
        manifest = export.write_export(directory / name, job.format, filters, actor=job.requested_by, progress=progress)
    except Exception as error:  # the job row must say it failed, whatever the cause
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.FAILED, error=str(error)[:2000], finished_at=timezone.now()
        )
        raise
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.DONE,
        rows_done=manifest["rows"],
        file_name=name,
        manifest=manifest,
        finished_at=timezone.now(),
    )
    return ExportJob.objects.get(pk=job.pk)


def path_of(job: ExportJob) -> Path:
    return Path(settings.AUDIT_EXPORT_DIR) / job.file_name


def manifest_file(job: ExportJob) -> Path:
    return export.manifest_path(path_of(job))
