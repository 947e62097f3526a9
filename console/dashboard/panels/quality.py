"""How well the chosen versions answered: latency percentiles and the share of failed outcomes.

Outcomes are reported after the decision and only by applications that report them, so this panel
counts outcomes, not decisions, and says so when a range has none.
"""

from collections import defaultdict

from audit.rollups import merged_percentiles
from console.dashboard import charts
from console.dashboard.panels.base import Dashboard, Panel, share
from console.dashboard.queries import Row
from console.dashboard.tables import INT, MS, PERCENT, Column, Link, Table

TOP_VERSIONS = 12


def latency(dashboard: Dashboard) -> Panel:
    outcomes: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    names: dict[int, Row] = {}
    for row in dashboard.sums.rows:
        if row.model_version_id is None or not row.outcomes:
            continue
        counts = outcomes[row.model_version_id]
        counts[0] += row.ok
        counts[1] += row.error
        counts[2] += row.timeout
        names.setdefault(row.model_version_id, row)
    histograms = dashboard.sums.histograms
    table = Table(
        [
            Column("Model version"),
            Column("Outcomes", INT),
            Column("OK", INT),
            Column("Errors", INT),
            Column("Timeouts", INT),
            Column("Failed", PERCENT),
            Column("p50", MS),
            Column("p95", MS),
            Column("p99", MS),
        ]
    )
    ranked = sorted(outcomes.items(), key=lambda item: (-sum(item[1]), dashboard.version(names[item[0]]).name))
    for version_id, (ok, error, timeout) in ranked:
        version = dashboard.version(names[version_id])
        estimate = merged_percentiles(histograms.get(version_id, []), (50, 95, 99))
        total = ok + error + timeout
        table.rows.append(
            [
                Link(version.name, version.url) if version.url else version.name,
                total,
                ok,
                error,
                timeout,
                share(error + timeout, total),
                estimate[50],
                estimate[95],
                estimate[99],
            ]
        )
    shown = table.rows[:TOP_VERSIONS]
    labels = [str(row[0]) for row in shown]
    figure = charts.grouped_bars(
        labels, {"p50": [row[6] for row in shown], "p95": [row[7] for row in shown]}, y_title="Milliseconds"
    )
    charts.with_rate(figure, labels, [row[5] for row in shown], "Failed (error or timeout)")
    return Panel(
        "latency",
        "Latency and errors by model version",
        "Reported latency (p50 and p95, bars) and the share of failed outcomes (diamonds, right axis) for the "
        f"model version that answered; {dashboard.scope.describe()}.",
        table,
        figure,
        notes=[
            "Percentiles are estimated from the hourly latency histograms merged over the range, so each is "
            "accurate to the width of its histogram bucket. Outcomes count in the hour of their decision.",
        ],
        empty="No outcomes reported in this range.",
    )
