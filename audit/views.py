"""The auditor's pages: search the log, read one event with what it links to. Read only."""

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.generic import DetailView

from audit.filters import AuditEventFilter
from audit.models import AuditEvent, AuditSeal, Checkpoint
from console.pagination import CappedPaginator
from console.views import RolePermissionMixin, require_permission
from policies.models import PolicyVersion
from registry.models import ModelVersion
from registry.views import querystring

PAGE_SIZE = 50
# Matches counted at most, so a page's cost does not grow with the log (200 pages of 50).
COUNT_CAP = 10_000
DECISION = "routing.decision"
OUTCOME = "routing.outcome"


@require_safe
def event_list(request: HttpRequest) -> HttpResponse:
    """The log, newest first, narrowed by the shared filters; the seal shows what is chained yet."""
    require_permission(request, AuditEvent)
    queryset = AuditEvent.objects.select_related("seal").order_by("-occurred_at", "-id")
    event_filter = AuditEventFilter(request.GET or None, queryset=queryset)
    paginator = CappedPaginator(event_filter.qs, PAGE_SIZE, cap=COUNT_CAP)
    page = paginator.get_page(request.GET.get("page"))
    context = {"filter": event_filter, "page": page, "query": querystring(request), "ledger": ledger_facts()}
    return render(request, "audit/event_list.html", context)


def ledger_facts() -> dict[str, Any]:
    """What lets anyone check the ledger offline: the signing key's public half, the newest
    signed checkpoint, and whether anything waits to be sealed (two cheap queries)."""
    from audit.checkpoints import public_key_hex

    try:
        public_key = public_key_hex()
    except ImproperlyConfigured:
        public_key = None
    return {
        "public_key": public_key,
        "checkpoint": Checkpoint.objects.order_by("-sequence").first(),
        "last_sequence": AuditSeal.objects.order_by("-sequence").values_list("sequence", flat=True).first(),
    }


class EventDetail(RolePermissionMixin, DetailView):  # type: ignore[type-arg]
    """One event in full, and for routing events the decision, outcome, policy and model behind it."""

    model = AuditEvent
    queryset = AuditEvent.objects.select_related("seal")
    template_name = "audit/event_detail.html"
    context_object_name = "event"
    http_method_names = ["get", "head", "options"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        event: AuditEvent = self.object
        context["seal"] = getattr(event, "seal", None)
        context["documents"] = [
            (label, pretty(value))
            for label, value in (("Before", event.before), ("After", event.after), ("Data", event.data))
        ]
        if event.decision_id and event.kind in (DECISION, OUTCOME):
            partner_kind = OUTCOME if event.kind == DECISION else DECISION
            context["partner"] = AuditEvent.objects.filter(kind=partner_kind, decision_id=event.decision_id).first()
        if event.policy_slug and event.policy_version is not None:
            context["policy_version"] = (
                PolicyVersion.objects.filter(policy__slug=event.policy_slug, number=event.policy_version)
                .select_related("policy")
                .prefetch_related("reviews")
                .first()
            )
        if event.model_version_id is not None:
            context["model_version"] = (
                ModelVersion.objects.filter(pk=event.model_version_id).select_related("model__provider").first()
            )
        return context


def pretty(value: Any) -> str | None:
    """Stored JSON as an auditor reads it: indented, keys sorted, non-ASCII kept as written."""
    if value is None:
        return None
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
