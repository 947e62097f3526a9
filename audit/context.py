"""The request being served, captured once by middleware for every audit event it causes."""

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RequestContext:
    request: Any
    ip: str | None
    user_agent: str
    request_id: str

    @property
    def user(self) -> Any:
        """Read when an event is written, not when the request arrives: DRF authenticates a token
        inside the view and sets the user on the underlying request then."""
        return getattr(self.request, "user", None)


current_request: ContextVar[RequestContext | None] = ContextVar("current_request", default=None)
