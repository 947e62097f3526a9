"""The one permission layer for the REST API: a role's model permissions, reads included.

DRF's ``DjangoModelPermissions`` lets any authenticated user read; Switchboard needs the role's
``view`` permission for reads too, so a user without a role sees nothing.
"""

from typing import Any

from rest_framework.permissions import DjangoModelPermissions
from rest_framework.request import Request


class RolePermission(DjangoModelPermissions):
    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: Any) -> bool:
        required = getattr(view, "required_permissions", None)
        if required is not None:
            # Views without a model (actions, reports) name their permissions per method.
            if not (request.user and request.user.is_authenticated):
                return False
            perms = required.get(request.method, required.get("*", ()))
            return bool(request.user.has_perms(perms))
        return super().has_permission(request, view)
