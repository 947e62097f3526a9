"""The three roles, as Django groups, and the permissions each one holds.

Groups are (re)synchronised after every ``migrate``, so a new model's permissions reach the roles
without a hand-written data migration. Permissions are the single source of truth: views and API
endpoints check permissions, never group names.
"""

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

ADMINISTRATOR = "administrator"
REVIEWER = "reviewer"
AUDITOR = "auditor"
ROLES = (ADMINISTRATOR, REVIEWER, AUDITOR)

# Every role reads everything in these apps.
READABLE_APPS = ("registry", "policies", "audit")
# Administrators hold every permission (add, change, delete and custom ones) in these apps.
ADMINISTERED_APPS = ("registry", "policies")
# Further permissions per role, as "app_label.codename"; custom ones are declared in model Meta.
EXTRA_PERMISSIONS: dict[str, tuple[str, ...]] = {
    ADMINISTRATOR: ("audit.export_auditevent",),
    REVIEWER: ("policies.review_policyversion", "policies.review_compliancerequest"),
    AUDITOR: ("audit.export_auditevent",),
}
# Reviewing is the reviewers' alone: administrators write changes, so they never approve them.
REVIEW_PREFIX = "review_"


def permissions_for(role: str) -> "list[Permission]":
    query = Q(content_type__app_label__in=READABLE_APPS, codename__startswith="view_")
    if role == ADMINISTRATOR:
        query |= Q(content_type__app_label__in=ADMINISTERED_APPS) & ~Q(codename__startswith=REVIEW_PREFIX)
    for name in EXTRA_PERMISSIONS[role]:
        app_label, codename = name.split(".")
        query |= Q(content_type__app_label=app_label, codename=codename)
    return list(Permission.objects.filter(query))


def sync_roles(**kwargs: Any) -> None:
    """Create the role groups and give each exactly its permissions (idempotent)."""
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(permissions_for(role))


def roles_of(user: Any) -> list[str]:
    if not getattr(user, "is_authenticated", False):
        return []
    return sorted(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
