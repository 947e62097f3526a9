"""Download views for audit exports: the streamed file, and the manifest that lets it be verified offline.

Exporting reads the whole log, so only administrators and auditors may do it, even though
reviewers can view events one by one. The download pins the last sequence it covers (when the
request did not) and names it in the file name and the ``X-Audit-Sequence-To`` header: the manifest
view, asked with the same parameters, then describes exactly the same bytes.
"""

import dataclasses
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from audit import export
from audit import export_jobs as export_jobs_service
from audit.models import AuditEvent, AuditSeal, ExportJob
from console.views import require_permission

CONTENT_TYPES = {"jsonl": "application/x-ndjson; charset=utf-8", "csv": "text/csv; charset=utf-8"}


def _require_exporter(request: HttpRequest) -> None:
    require_permission(request, AuditEvent, "view")
    require_permission(request, AuditEvent, "export")


def _parse(params: Any) -> tuple[str, export.ExportFilters]:
    format = params.get("format", "jsonl")
    if format not in export.FORMATS:
        raise ValueError(f"format: one of {', '.join(export.FORMATS)}")
    return format, export.ExportFilters.from_params(params)


def _pinned(filters: export.ExportFilters) -> export.ExportFilters:
    """Fix the end of the export now, so events sealed while it streams do not change what it is."""
    if filters.sequence_to is not None:
        return filters
    last = AuditSeal.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    return dataclasses.replace(filters, sequence_to=last or 0)


def _requested_export(request: HttpRequest) -> tuple[str, export.ExportFilters]:
    """The export a GET asks for, with its end fixed now; ``ValueError`` names a bad parameter."""
    _require_exporter(request)
    format, filters = _parse(request.GET)
    return format, _pinned(filters)


@require_GET
def export_download(request: HttpRequest) -> HttpResponseBase:
    """Stream the sealed events that match the filters; the export is audited before the first byte."""
    try:
        format, filters = _requested_export(request)
    except ValueError as error:
        return HttpResponseBadRequest(str(error))
    export.start_export(format, filters, actor=request.user)
    response = StreamingHttpResponse(export.stream(format, filters), content_type=CONTENT_TYPES[format])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}-to-{filters.sequence_to}.{format}"'
    response["X-Audit-Sequence-To"] = str(filters.sequence_to)
    return response


@require_GET
def export_manifest(request: HttpRequest) -> HttpResponse:
    """The manifest of the export with the same parameters (include ``sequence_to`` from the download)."""
    try:
        format, filters = _requested_export(request)
    except ValueError as error:
        return HttpResponseBadRequest(str(error))
    summary = export.Summary()
    for _chunk in export.stream(format, filters, summary):
        pass
    body: dict[str, Any] = export.manifest(format, filters, summary)
    return JsonResponse(body, json_dumps_params={"indent": 2})


@require_http_methods(["GET", "POST"])
def export_jobs(request: HttpRequest) -> HttpResponse:
    """Exports: small ones stream at once, larger ones become a background job shown here."""
    _require_exporter(request)
    if request.method == "POST":
        try:
            format, filters = _parse(request.POST)
        except ValueError as error:
            return HttpResponseBadRequest(str(error))
        if export.seals(filters).count() <= settings.AUDIT_EXPORT_INLINE_LIMIT:
            return redirect(f"{reverse('audit-export')}?{request.POST.urlencode()}")
        job = export_jobs_service.queue(format, filters, user=request.user)
        messages.success(request, f"Export #{job.pk} is being prepared: {job.rows_total} rows.")
        return redirect("audit-export-jobs")
    jobs = ExportJob.objects.all()[:50]
    context = {
        "jobs": jobs,
        "params": request.GET,
        "formats": export.FORMATS,
        "limit": settings.AUDIT_EXPORT_INLINE_LIMIT,
    }
    return render(request, "audit/export_jobs.html", context)


@require_GET
def export_job_file(request: HttpRequest, pk: int, part: str) -> HttpResponseBase:
    """A finished job's file, or its manifest."""
    _require_exporter(request)
    job = get_object_or_404(ExportJob, pk=pk, status=ExportJob.Status.DONE)
    path = export_jobs_service.path_of(job) if part == "file" else export_jobs_service.manifest_file(job)
    if not path.exists():
        raise Http404("The export's file is no longer on this server.")
    return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
