"""Pages for reviewers: the queue, a policy version's review and a compliance widening's review.

Verdicts go through ``policies.services.review`` and ``review_compliance``, which hold the
four-eyes rules and write the audit events; these views show what a reviewer needs to decide and
report the services' refusals on the page (400), never as an error page. Reading needs the
``view_*`` permission, deciding the ``review_*`` one, which only reviewers hold.
"""

import difflib
import functools
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
import plotly.io as pio
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views import View
from django.views.decorators.http import require_safe

from console.views import permission_name, require_permission
from policies import document as doc
from policies import services
from policies.impact import Impact, preview
from policies.models import ComplianceRequest, PolicyVersion, Review
from policies.review_forms import VerdictForm
from registry.models import ComplianceCell
from registry.views import add_service_errors

# A reviewer reads the first rows; a page with thousands of rows helps nobody and costs a lot.
CHANGE_ROWS = 200
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# The URL carries plotly's version, so a browser may keep the file for a year.
VENDOR_MAX_AGE = 365 * 24 * 60 * 60
REFUSED = "refused"
APPROVE = Review.Verdict.APPROVE


def _may(request: HttpRequest, model: type[Any], action: str) -> bool:
    return bool(request.user.has_perm(permission_name(model, action)))


# --- The queue ------------------------------------------------------------------------------


@require_safe
def review_queue(request: HttpRequest) -> HttpResponse:
    """What waits for a decision, oldest first: whoever has waited longest is served first."""
    see_versions = _may(request, PolicyVersion, "view")
    see_requests = _may(request, ComplianceRequest, "view")
    if not (see_versions or see_requests):
        raise PermissionDenied
    versions = (
        PolicyVersion.objects.filter(state=PolicyVersion.State.SUBMITTED)
        .select_related("policy")
        .annotate(approvals=Count("reviews", filter=Q(reviews__verdict=APPROVE)))
        .order_by("submitted_at", "id")
        if see_versions
        else PolicyVersion.objects.none()
    )
    requests = (
        ComplianceRequest.objects.filter(state=ComplianceRequest.State.PENDING)
        .select_related("model_version__model__provider", "classification")
        .order_by("created_at", "id")
        if see_requests
        else ComplianceRequest.objects.none()
    )
    context = {
        "versions": versions,
        "requests": requests,
        "see_versions": see_versions,
        "see_requests": see_requests,
        "can_review_versions": _may(request, PolicyVersion, "review"),
        "can_review_requests": _may(request, ComplianceRequest, "review"),
    }
    return render(request, "policies/review_queue.html", context)


# --- The diff of two documents ------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff; ``sign`` is shown beside the colour for those who cannot see it."""

    kind: str  # "file", "hunk", "added", "removed" or "context"
    sign: str
    text: str


def document_diff(
    before: dict[str, Any] | None, after: dict[str, Any], *, before_name: str, after_name: str
) -> list[DiffLine]:
    """The unified diff of the canonical YAML: the same text people keep in version control."""
    old = doc.to_yaml(before).splitlines() if before is not None else []
    new = doc.to_yaml(after).splitlines()
    lines = []
    diff = difflib.unified_diff(old, new, fromfile=before_name, tofile=after_name, lineterm="")
    for position, raw in enumerate(diff):
        # The two file headers come first; a changed YAML line may itself start with "--".
        if position < 2:
            lines.append(DiffLine("file", "", raw))
        elif raw.startswith("@@"):
            lines.append(DiffLine("hunk", "", raw))
        elif raw.startswith("+"):
            lines.append(DiffLine("added", "+", raw[1:]))
        elif raw.startswith("-"):
            lines.append(DiffLine("removed", "−", raw[1:]))
        else:
            lines.append(DiffLine("context", " ", raw[1:]))
    return lines


def baseline(version: PolicyVersion) -> PolicyVersion | None:
    """What the version is compared with: the active version, which it would replace; for the
    active version itself, the version it was based on."""
    active = services.active_version(version.policy)
    if active is not None and active.pk != version.pk:
        return active
    return version.based_on


# --- The impact preview -------------------------------------------------------------------


@dataclass(frozen=True)
class MixRow:
    ref: str
    active: int
    proposed: int

    @property
    def delta(self) -> int:
        return self.proposed - self.active


def mix_rows(impact: Impact) -> list[MixRow]:
    """Model versions by how much traffic they carry in either column; refusals last."""
    refs = set(impact.active_mix) | set(impact.proposed_mix)
    ordered = sorted(refs - {REFUSED}, key=lambda ref: (-(impact.active_mix[ref] + impact.proposed_mix[ref]), ref))
    if REFUSED in refs:
        ordered.append(REFUSED)
    return [MixRow(ref, impact.active_mix[ref], impact.proposed_mix[ref]) for ref in ordered]


def mix_chart(rows: list[MixRow], *, active_name: str, proposed_name: str) -> str:
    """A grouped bar chart as an HTML fragment; plotly's script is served by ``plotly_js``.

    The proposed bars are hatched as well as coloured, so the two series differ without colour.
    """
    refs = [row.ref for row in rows]
    figure = go.Figure(
        [
            go.Bar(name=active_name, x=refs, y=[row.active for row in rows], marker_color="#5b6475"),
            go.Bar(
                name=proposed_name,
                x=refs,
                y=[row.proposed for row in rows],
                marker={"color": "#2450d3", "pattern": {"shape": "/", "fgcolor": "#ffffff"}},
            ),
        ]
    )
    figure.update_layout(
        barmode="group",
        template="simple_white",
        height=360,
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
        yaxis_title="Requests",
        legend={"orientation": "h", "y": 1.12},
    )
    html: str = pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=False,
        div_id="impact-chart",
        default_height="360px",
        config={"displaylogo": False, "responsive": True},
    )
    return html


def signed_money(amount: float) -> str:
    """A cost change with its direction (plus, minus sign, or ±), so it reads without colour."""
    sign = "+" if amount > 0 else "−" if amount < 0 else "±"
    return f"{sign}${abs(amount):,.4f}"


def impact_context(version: PolicyVersion, compared: PolicyVersion | None) -> dict[str, Any]:
    impact = preview(version)
    rows = mix_rows(impact)
    active_name = f"Active v{compared.number}" if compared is not None else "No active version"
    proposed_name = f"Proposed v{version.number}"
    delta_percent = impact.cost_delta / impact.active_cost * 100 if impact.active_cost else None
    return {
        "impact": impact,
        "mix_rows": rows,
        "chart": mix_chart(rows, active_name=active_name, proposed_name=proposed_name) if rows else "",
        "active_name": active_name,
        "proposed_name": proposed_name,
        "cost_delta": signed_money(impact.cost_delta),
        "cost_delta_percent": f"{delta_percent:+.1f}%" if delta_percent is not None else "",
        "changes": impact.changes[:CHANGE_ROWS],
        "more_changes": max(impact.changed - CHANGE_ROWS, 0),
    }


# --- Reviewing a policy version -----------------------------------------------------------


class VersionReview(View):
    """The diff against the active rules, what would change for recent traffic, and the verdict."""

    def get(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        require_permission(request, PolicyVersion)
        version = self._version(slug, number)
        return self._render(request, version, VerdictForm())

    def post(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        require_permission(request, PolicyVersion, "review")
        version = self._version(slug, number)
        form = VerdictForm(request.POST)
        if form.is_valid():
            try:
                version = services.review(
                    version,
                    reviewer=request.user,
                    verdict=form.cleaned_data["verdict"],
                    comment=form.cleaned_data["comment"],
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(request, self._outcome(version, form.cleaned_data["verdict"]))
                return redirect("policies:version-review", slug=version.policy.slug, number=version.number)
        return self._render(request, self._version(slug, number), form, status=400)

    def _version(self, slug: str, number: int) -> PolicyVersion:
        return get_object_or_404(
            PolicyVersion.objects.select_related("policy", "based_on"), policy__slug=slug, number=number
        )

    def _outcome(self, version: PolicyVersion, verdict: str) -> str:
        if verdict != APPROVE:
            return f"Rejected {version}; the author sees your comment."
        if version.state == PolicyVersion.State.ACTIVE:
            return f"Approved {version}: it is now the active version of {version.policy}."
        approvals = version.reviews.filter(verdict=APPROVE).count()
        return f"Approved {version}: {approvals} of {version.policy.required_approvals} approvals so far."

    def _render(
        self, request: HttpRequest, version: PolicyVersion, form: VerdictForm, status: int = 200
    ) -> HttpResponse:
        compared = baseline(version)
        compared_name = f"v{compared.number} ({compared.get_state_display().lower()})" if compared else "(nothing)"
        may_review = _may(request, PolicyVersion, "review")
        allowed, why = services.can_review(version, request.user) if may_review else (False, "")
        if why and why in form.non_field_errors():
            why = ""  # the refusal is already shown as the form's error
        context: dict[str, Any] = {
            "version": version,
            "policy": version.policy,
            "contributors": [user.get_username() for user in version.contributors.all()],
            "reviews": version.reviews.all(),
            "approvals": version.reviews.filter(verdict=APPROVE).count(),
            "compared": compared,
            "diff": document_diff(
                compared.document if compared else None,
                version.document,
                before_name=compared_name,
                after_name=f"v{version.number} ({version.get_state_display().lower()})",
            ),
            "proposed_yaml": doc.to_yaml(version.document),
            "form": form,
            "may_review": may_review,
            "can_decide": allowed,
            "refusal": why,
            "plotly_version": plotly.__version__,
        }
        if version.state != PolicyVersion.State.ACTIVE:
            context.update(impact_context(version, services.active_version(version.policy)))
        return render(request, "policies/review_version.html", context, status=status)


# --- Reviewing a compliance widening ------------------------------------------------------


class ComplianceRequestReview(View):
    """The proposed decision beside the cell it would replace, and the verdict."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        require_permission(request, ComplianceRequest)
        return self._render(request, self._request(pk), VerdictForm())

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        require_permission(request, ComplianceRequest, "review")
        change = self._request(pk)
        form = VerdictForm(request.POST)
        if form.is_valid():
            try:
                change = services.review_compliance(
                    change,
                    reviewer=request.user,
                    verdict=form.cleaned_data["verdict"],
                    comment=form.cleaned_data["comment"],
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                subject = f"{change.model_version} × {change.classification.slug}"
                if change.state == ComplianceRequest.State.APPLIED:
                    messages.success(request, f"Approved: {subject} is now {change.decision}.")
                else:
                    messages.success(request, f"Rejected: {subject} stays as it was.")
                return redirect("policies:compliance-request", pk=change.pk)
        return self._render(request, self._request(pk), form, status=400)

    def _request(self, pk: int) -> ComplianceRequest:
        return get_object_or_404(
            ComplianceRequest.objects.select_related("model_version__model__provider", "classification"), pk=pk
        )

    def _render(
        self, request: HttpRequest, change: ComplianceRequest, form: VerdictForm, status: int = 200
    ) -> HttpResponse:
        cell = (
            ComplianceCell.objects.prefetch_related("regions")
            .filter(model_version=change.model_version, classification=change.classification)
            .first()
        )
        may_review = _may(request, ComplianceRequest, "review")
        context = {
            "change": change,
            "cell": cell,
            "reviews": change.reviews.all(),
            "form": form,
            "may_review": may_review,
            "can_decide": False,
            "refusal": "",
        }
        # Hints only, so nobody is offered a button that will be refused; review_compliance
        # enforces both rules whatever the page shows.
        allowed, why = services.can_review_compliance(change, request.user)
        if change.state != ComplianceRequest.State.PENDING or (may_review and not allowed):
            context["refusal"] = why
        else:
            context["can_decide"] = may_review
        if context["refusal"] in form.non_field_errors():
            context["refusal"] = ""
        return render(request, "policies/compliance_request_review.html", context, status=status)


# --- plotly's script, from the installed package ------------------------------------------


@functools.cache
def _plotly_gzipped(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=6)


@login_not_required  # a published open-source library, like the stylesheet; nothing private
@require_safe
def plotly_js(request: HttpRequest) -> HttpResponse:
    """plotly.js from the installed Python package: the console loads nothing from the internet,
    and the repository keeps no copy that could drift from the package's version."""
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(_plotly_gzipped(PLOTLY_JS), content_type="text/javascript; charset=utf-8")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(PLOTLY_JS.read_bytes(), content_type="text/javascript; charset=utf-8")
    patch_vary_headers(response, ["Accept-Encoding"])
    patch_cache_control(response, public=True, max_age=VENDOR_MAX_AGE, immutable=True)
    return response
