import datetime

from celery import shared_task

from policies.budgets import raise_alert


@shared_task
def raise_budget_alert(
    *, scope: str, owner_id: int, month: str, threshold: int, budget_micro: int, spend_micro: int
) -> int | None:
    """Record a budget threshold a routing request reached (queued after its commit); returns the
    alert's id, or None if it was already raised."""
    alert = raise_alert(
        scope=scope,
        owner_id=owner_id,
        month=datetime.date.fromisoformat(month),
        threshold=threshold,
        budget_micro=budget_micro,
        spend_micro=spend_micro,
    )
    return alert.pk if alert else None
