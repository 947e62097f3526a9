"""The request being served, captured once by middleware for every audit event it causes."""

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RequestContext:
    user: Any
    ip: str | None
    user_agent: str
    request_id: str


current_request: ContextVar[RequestContext | None] = ContextVar("current_request", default=None)
