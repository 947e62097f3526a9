from typing import Any

from django.http import HttpRequest

from console.roles import roles_of


def roles(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's role names, for the navigation bar."""
    return {"user_roles": roles_of(getattr(request, "user", None))}
