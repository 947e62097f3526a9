from functools import cached_property
from typing import Any, cast

from django.core.paginator import Paginator
from django.db.models import QuerySet
from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """Page numbers with a client-chosen page size, capped so one request stays cheap."""

    page_size_query_param = "page_size"
    max_page_size = 500


class CappedPaginator(Paginator):  # type: ignore[type-arg]  # not subscriptable at runtime
    """Pages of a queryset that counts its matches only up to ``cap``.

    An exact count reads every matching row, so on a log of millions it costs more than the page
    it labels, and the cost keeps growing with the table. Counting at most ``cap + 1`` rows bounds
    it whatever the table holds; past the cap, ``capped`` tells the page to say so, and every page
    number up to the cap still works.
    """

    def __init__(self, object_list: QuerySet[Any], per_page: int, *, cap: int, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.cap = cap

    @cached_property
    def counted(self) -> int:
        """Matches up to one past the cap, which is how "more than the cap" is told from "exactly".

        Kept in the page's order on purpose: so the database walks the index that serves the page
        and stops after ``cap + 1`` rows. Unordered, PostgreSQL may first collect every match in a
        bitmap, which costs as much as the exact count it replaces.
        """
        queryset = cast(QuerySet[Any], self.object_list)  # as __init__ takes it
        return queryset[: self.cap + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.cap)

    @property
    def capped(self) -> bool:
        return self.counted > self.cap
