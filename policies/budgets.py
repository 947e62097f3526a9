"""Budgets and quotas: what a routing request is charged against, and the alerts at 80% and 100%.

A team has a monthly budget; an application may have its own on top (both must hold) and a quota
of requests per minute. Spend is the month-to-date sum of the decisions' estimated costs, counted
at decision time in ``policies.counters``; months are calendar months in ``TIME_ZONE``.

Alerts must not slow the routing hot path: the request only notices that a threshold is reached
(a comparison on numbers it already has) and, once per process, defers the rest to
``policies.tasks.raise_budget_alert`` after commit. The task writes the ``BudgetAlert`` row, the
audit event and the email; the database's unique constraint makes it once per budget, month and
threshold however many processes noticed.
"""

import datetime
import functools
import logging
import math
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import record_event
from policies import engine
from policies.counters import APPLICATION, TEAM, CountersUnavailable, Usage, Window, get_counters
from policies.models import Application, BudgetAlert, Team

logger = logging.getLogger(__name__)

THRESHOLDS = (80, 100)
MICRO = 1_000_000


def money(micro: int) -> str:
    """How budgets are named in answers, reasons and emails, e.g. $1,234.50."""
    return f"${micro / MICRO:,.2f}"


def month_of(at: datetime.datetime) -> datetime.date:
    return timezone.localdate(at).replace(day=1)


def next_month(month: datetime.date) -> datetime.date:
    return (month + datetime.timedelta(days=32)).replace(day=1)


def window(app: engine.App, at: datetime.datetime) -> Window:
    return Window(
        app_id=app.id,
        team_id=app.team_id,
        minute=int(at.timestamp()) // 60,
        month=month_of(at),
        requests_per_minute=app.requests_per_minute,
        team_budget_micro=app.team_budget_micro,
        app_budget_micro=app.budget_micro,
    )


def retry_after(window: Window, at: datetime.datetime) -> int:
    """Whole seconds until the request's minute ends and the quota counts afresh."""
    return max(1, math.ceil((window.minute + 1) * 60 - at.timestamp()))


def exceeded(app: engine.App, window: Window, usage: Usage) -> str:
    """Which budgets the request is over, in words ("" if none): the decision's reasons cite it."""
    over = []
    if usage.over_team_budget(window):
        over.append(f"team {app.team_name} is over its monthly budget of {money(window.team_budget_micro or 0)}")
    if usage.over_app_budget(window):
        over.append(f"application {app.name} is over its monthly budget of {money(window.app_budget_micro or 0)}")
    return " and ".join(over)


def over_budget_body(app: engine.App, window: Window, usage: Usage) -> list[dict[str, Any]]:
    """The exceeded budgets for a refusal's JSON, so a caller can tell which one and until when."""
    resets_at = timezone.make_aware(datetime.datetime.combine(next_month(window.month), datetime.time()))
    budgets = []
    if usage.over_team_budget(window):
        budgets.append((TEAM, app.team, app.team_name, window.team_budget_micro, usage.team_spent))
    if usage.over_app_budget(window):
        budgets.append((APPLICATION, app.slug, app.name, window.app_budget_micro, usage.app_spent))
    return [
        {
            "scope": scope,
            "slug": slug,
            "name": name,
            "monthly_budget_usd": f"{(budget or 0) / MICRO:.2f}",
            "spent_usd": round(spent / MICRO, 6),
            "month": f"{window.month:%Y-%m}",
            "resets_at": resets_at.isoformat(),
        }
        for scope, slug, name, budget, spent in budgets
    ]


# --- Alerts: noticed on the hot path, raised after commit -------------------------------------


@dataclass(frozen=True, slots=True)
class Crossing:
    """A budget at or past a threshold, as one routing request saw it."""

    scope: str
    owner_id: int
    month: datetime.date
    threshold: int
    budget_micro: int
    spend_micro: int

    @property
    def key(self) -> tuple[str, int, datetime.date, int, int]:
        return (self.scope, self.owner_id, self.month, self.threshold, self.budget_micro)


class _Noticed:
    """Crossings this process has already handed to the task: each process hands each one over
    once, and the task keeps it once overall. Forgotten when the month changes."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, int, datetime.date, int, int]] = set()
        self._month: datetime.date | None = None
        self._lock = threading.Lock()

    def first_time(self, crossing: Crossing) -> bool:
        with self._lock:
            if crossing.month != self._month:
                self._keys, self._month = set(), crossing.month
            if crossing.key in self._keys:
                return False
            self._keys.add(crossing.key)
            return True

    def clear(self) -> None:
        with self._lock:
            self._keys, self._month = set(), None


noticed = _Noticed()


def crossings(window: Window, usage: Usage, charge: int) -> list[Crossing]:
    """Thresholds the spend has reached with this request's cost (no I/O).

    "Reached", not "crossed by this request": a crossing a concurrent request made, or one a
    crashed process noticed but never raised, is still caught by the next request.
    """
    found = []
    for scope, owner_id, budget, spent in (
        (TEAM, window.team_id, window.team_budget_micro, usage.team_spent),
        (APPLICATION, window.app_id, window.app_budget_micro, usage.app_spent),
    ):
        if budget is None:
            continue
        spend = spent + charge
        for threshold in THRESHOLDS:
            if spend * 100 >= budget * threshold:
                found.append(Crossing(scope, owner_id, window.month, threshold, budget, spend))
    return found


def notice(window: Window, usage: Usage, charge: int) -> None:
    """Hand each newly reached threshold to the alert task once the decision is committed."""
    for crossing in crossings(window, usage, charge):
        if noticed.first_time(crossing):
            transaction.on_commit(functools.partial(_enqueue, crossing))


def _enqueue(crossing: Crossing) -> None:
    from policies.tasks import raise_budget_alert

    try:
        raise_budget_alert.delay(
            scope=crossing.scope,
            owner_id=crossing.owner_id,
            month=crossing.month.isoformat(),
            threshold=crossing.threshold,
            budget_micro=crossing.budget_micro,
            spend_micro=crossing.spend_micro,
        )
    except Exception:
        # The decision is stored and answered; a lost alert must not turn it into an error. It
        # is noticed again after a restart, and on the next request of every other process.
        logger.exception("Could not raise the budget alert %s", crossing)


@transaction.atomic
def raise_alert(
    *, scope: str, owner_id: int, month: datetime.date, threshold: int, budget_micro: int, spend_micro: int
) -> BudgetAlert | None:
    """Record a reached threshold: the banner's row, the audit event and the email to the team's
    contacts. Returns None if it was already raised (or its team or application is gone)."""
    application = None
    if scope == APPLICATION:
        application = Application.objects.select_related("team").filter(pk=owner_id).first()
    team = application.team if application else Team.objects.filter(pk=owner_id).first()
    if team is None or (scope == APPLICATION and application is None):
        return None
    budget = Decimal(budget_micro) / MICRO
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                team=team,
                application=application,
                month=month,
                threshold=threshold,
                spend_usd=Decimal(spend_micro) / MICRO,
                budget_usd=budget.quantize(Decimal("0.01")),
            )
    except IntegrityError:
        return None
    owner = application or team
    noun = "application" if application else "team"
    summary = (
        f"{noun.capitalize()} {owner} has used {threshold}% of its monthly budget in {month:%B %Y}: "
        f"{money(spend_micro)} of {money(budget_micro)} (estimated)."
    )
    recipients = team.contacts.split()
    subject = f"[Switchboard] {noun.capitalize()} {owner} has used {threshold}% of its monthly budget"
    error = _email(subject, summary, alert, recipients)
    record_event(
        "budget.alert",
        obj=owner,
        after={
            "scope": scope,
            "team": team.slug,
            "application": application.slug if application else None,
            "month": f"{month:%Y-%m}",
            "threshold": threshold,
            "spend_usd": str(alert.spend_usd),
            "budget_usd": str(alert.budget_usd),
            "emailed_to": recipients if error is None else [],
            "email_error": error,
        },
        reason=summary,
    )
    return alert


def _email(subject: str, summary: str, alert: BudgetAlert, recipients: list[str]) -> str | None:
    """Send the alert; a failure is logged and noted in the audit event, never lost in silence.
    The row and the event are kept either way: the banner still shows it."""
    if not recipients:
        return "the team has no contacts"
    if alert.threshold >= 100:
        consequence = (
            "Requests now over budget are refused or downgraded to the economy tier, as each rule of the "
            "routing policy says (over_budget), until the month ends or the budget is raised."
        )
    else:
        consequence = "At 100%, requests are refused or downgraded to the economy tier, as the routing policy says."
    body = f"{summary}\n\n{consequence}\n\nSpend is estimated from routing decisions; see the console's dashboard.\n"
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception as exc:  # any backend's failure: SMTP, DNS, a misconfigured backend
        logger.exception("Budget alert email to %s failed", recipients)
        return f"{type(exc).__name__}: {exc}"
    return None


# --- For the pages --------------------------------------------------------------------------


def active_alerts(today: datetime.date | None = None) -> list[BudgetAlert]:
    """This month's alerts for the dashboard's banner: per budget, the highest threshold reached,
    100% first, then by time.

    An alert about an amount that has since been changed is history, not a warning: changing a
    budget re-arms its alerts for the new amount.
    """
    month = (today or timezone.localdate()).replace(day=1)
    current = Q(application__isnull=True, budget_usd=F("team__monthly_budget_usd")) | Q(
        application__isnull=False, budget_usd=F("application__monthly_budget_usd")
    )
    rows = (
        BudgetAlert.objects.filter(current, month=month)
        .select_related("team", "application")
        .order_by("-threshold", "-created_at", "-id")
    )
    seen: set[tuple[int, int | None]] = set()
    alerts = []
    for alert in rows:
        if (alert.team_id, alert.application_id) not in seen:
            seen.add((alert.team_id, alert.application_id))
            alerts.append(alert)
    return alerts


@dataclass(frozen=True)
class Spend:
    """Month-to-date estimated spend against a budget, for the team and application pages."""

    month: datetime.date
    spent: Decimal | None  # None: the counters could not be reached
    budget: Decimal | None

    @classmethod
    def of(cls, scope: str, owner_id: int, budget: Decimal | None, today: datetime.date | None = None) -> "Spend":
        """Read from the counters routing charges, so the page shows what routing enforces."""
        month = (today or timezone.localdate()).replace(day=1)
        try:
            spent: Decimal | None = Decimal(get_counters().spent(scope, owner_id, month)) / MICRO
        except CountersUnavailable:
            spent = None
        return cls(month=month, spent=spent, budget=budget)

    @property
    def percent(self) -> int | None:
        if self.spent is None or not self.budget:
            return None
        return int(self.spent * 100 / self.budget)

    @property
    def over(self) -> bool:
        return self.spent is not None and self.budget is not None and self.spent >= self.budget
