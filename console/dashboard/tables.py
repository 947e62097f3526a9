"""A panel's data table: one structure for the page (formatted, with links) and its CSV (raw).

Keeping the numbers in one place is what makes the chart, the table under it and the download
agree: all three are drawn from the same ``Table``.
"""

import csv
import datetime
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

TEXT, INT, MONEY, PERCENT, MS, DATE = "text", "int", "money", "percent", "ms", "date"
NUMERIC = {INT, MONEY, PERCENT, MS}
MISSING = "—"


@dataclass(frozen=True)
class Link:
    """A cell that links somewhere on the page; the CSV keeps only its text."""

    text: str
    url: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Column:
    label: str
    kind: str = TEXT

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC


@dataclass
class Table:
    """Rows of raw values (int, Decimal, float, str, date, Link or None) under typed columns.

    The first column heads its row (``<th scope="row">``); ``total`` is an optional last row.
    """

    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    total: list[Any] | None = None

    def display(self) -> Iterator[list[tuple[Any, bool]]]:
        """Formatted cells with whether each is numeric, for the template."""
        for row in self.rows:
            yield self._display(row)

    def display_total(self) -> list[tuple[Any, bool]] | None:
        return self._display(self.total) if self.total is not None else None

    def _display(self, row: list[Any]) -> list[tuple[Any, bool]]:
        return [(show(value, column.kind), column.numeric) for value, column in zip(row, self.columns, strict=True)]

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([column.label for column in self.columns])
        for row in [*self.rows, *([self.total] if self.total is not None else [])]:
            writer.writerow([raw(value) for value in row])
        return out.getvalue()

    def column(self, label: str) -> list[Any]:
        """The raw values of one column, for charts drawn from the table."""
        index = [column.label for column in self.columns].index(label)
        return [row[index] for row in self.rows]


def render(table: Table, *, slug: str, caption: str) -> SafeString:
    """The table as HTML: headers with ``scope``, the first cell of each row as its header.

    Built here rather than in a template because a month of daily rows under eight charts is a
    few thousand cells, and Django's template loop costs about 20 µs a cell: a third of the
    page's time budget.
    """
    parts = [f'<table class="data" data-panel="{escape(slug)}"><caption class="sr-only">{escape(caption)}</caption>']
    parts.append("<thead><tr>")
    for column in table.columns:
        parts.append(f'<th scope="col"{NUM if column.numeric else ""}>{escape(column.label)}</th>')
    parts.append("</tr></thead><tbody>")
    for row in table.display():
        parts.append(_row(row))
    parts.append("</tbody>")
    total = table.display_total()
    if total is not None:
        parts.append(f"<tfoot>{_row(total)}</tfoot>")
    parts.append("</table>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above went through escape()


NUM = ' class="num"'


def _row(cells: list[tuple[Any, bool]]) -> str:
    out = ["<tr>"]
    for index, (value, numeric) in enumerate(cells):
        text = f'<a href="{escape(value.url)}">{escape(value.text)}</a>' if isinstance(value, Link) else escape(value)
        if index == 0:
            out.append(f'<th scope="row">{text}</th>')
        else:
            out.append(f"<td{NUM if numeric else ''}>{text}</td>")
    out.append("</tr>")
    return "".join(out)


def show(value: Any, kind: str) -> Any:
    """A value as people read it; links stay links (the template renders them)."""
    if value is None:
        return MISSING
    if value == "":
        return ""
    if isinstance(value, Link):
        return value
    if kind == INT:
        return f"{value:,}"
    if kind == MONEY:
        return money(value)
    if kind == PERCENT:
        return f"{value:.1f}%"
    if kind == MS:
        return f"{value:,.0f} ms"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def money(value: Decimal | float) -> str:
    """Dollars with cents; amounts too small for a cent still show that they are not nothing."""
    amount = Decimal(value)
    if amount and abs(amount) < Decimal("0.005"):
        return "<$0.01" if amount > 0 else "−<$0.01"
    sign = "−" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def raw(value: Any) -> Any:
    """A value for CSV: full precision, no thousands separators, empty for nothing."""
    if value is None:
        return ""
    if isinstance(value, Link):
        return value.text
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.000001'))}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value
