"""Plotly figures as HTML fragments, rendered on the server without plotly.js inside them.

The page loads plotly.js once, from the installed package (``policies:plotly-js``), never a CDN.
Figures are plain dicts serialised without validation: they are ours and fixed in shape, and
building ``plotly.graph_objects`` for eight charts would cost more than the queries do.

Colour is never the only difference between series: bars get a fill pattern each, lines a dash
and a marker symbol, and every chart has the same numbers in a table under it.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.io as pio

# Okabe and Ito's palette, told apart by people with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999")
PATTERNS = ("", "/", ".", "x", "\\", "-", "|", "+", "")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon")
HEIGHT = 340
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


def fragment(figure: dict[str, Any], div_id: str) -> str:
    """The figure as a ``<div>`` and a script that draws it once plotly.js has loaded."""
    height = figure.get("layout", {}).get("height", HEIGHT)
    layout = {
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12, "color": "#1d2330"},
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "traceorder": "normal"},
        "xaxis": {"gridcolor": "#eef1f6", "linecolor": "#d9dee7", "automargin": True},
        "yaxis": {"gridcolor": "#eef1f6", "linecolor": "#d9dee7", "rangemode": "tozero", "automargin": True},
        "hoverlabel": {"namelength": -1},
    }
    for key, value in figure.get("layout", {}).items():
        layout[key] = {**layout[key], **value} if isinstance(value, dict) and key in layout else value
    html: str = pio.to_html(
        {"data": figure["data"], "layout": layout},
        full_html=False,
        include_plotlyjs=False,
        validate=False,
        div_id=div_id,
        default_height=f"{height}px",
        config=CONFIG,
    )
    return html


# Series with a fixed look wherever they appear.
FIXED = {"Other": ("#999999", ""), "Refused": ("#3d3d3d", "x")}


def bar_style(index: int, name: str = "") -> dict[str, Any]:
    """A colour and a fill pattern (drawn in white over the colour) for the index-th series."""
    color, shape = FIXED.get(name, (PALETTE[index % len(PALETTE)], PATTERNS[index % len(PATTERNS)]))
    return {
        "color": color,
        "pattern": {"shape": shape, "bgcolor": color, "fgcolor": "#ffffff", "fillmode": "overlay", "size": 7},
        "line": {"color": "#ffffff", "width": 0.5},
    }


def stacked_bars(
    x: Sequence[str], series: Mapping[str, Sequence[float]], *, y_title: str, money: bool = False
) -> dict[str, Any]:
    """One stacked bar per period, one layer per series."""
    hover = "%{fullData.name}<br>%{x}: " + ("$%{y:,.2f}" if money else "%{y:,}") + "<extra></extra>"
    data = [
        {
            "type": "bar",
            "name": name,
            "x": list(x),
            "y": list(values),
            "marker": bar_style(i, name),
            "hovertemplate": hover,
        }
        for i, (name, values) in enumerate(series.items())
    ]
    yaxis: dict[str, Any] = {"title": {"text": y_title}}
    if money:
        yaxis["tickprefix"] = "$"
    return {"data": data, "layout": {"barmode": "stack", "yaxis": yaxis, "xaxis": {"type": "category"}}}


def horizontal_bars(labels: Sequence[str], series: Mapping[str, Sequence[float]], *, x_title: str) -> dict[str, Any]:
    """Labels down the side, largest first, with the values written on the bars."""
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": name,
            "y": list(labels),
            "x": list(values),
            "text": [f"{value:,}" for value in values],
            "textposition": "auto",
            "marker": bar_style(i, name),
            "hovertemplate": "%{fullData.name}<br>%{y}: %{x:,}<extra></extra>",
        }
        for i, (name, values) in enumerate(series.items())
    ]
    return {
        "data": data,
        "layout": {
            "barmode": "stack",
            "xaxis": {"title": {"text": x_title}},
            "yaxis": {"autorange": "reversed", "type": "category"},
            "margin": {"l": 220},
            # A bar per label, whatever their number: one fat bar or forty thin ones read badly.
            "height": max(170, 90 + 34 * len(labels)),
        },
    }


def budget_use(labels: Sequence[str], used: Sequence[float | None], texts: Sequence[str]) -> dict[str, Any]:
    """Each budget's share spent as a bar, with the 80% and 100% lines drawn across the chart.

    Shares rather than dollars: a $12,000 budget and a $2 one read on the same axis.
    """
    shares = [value or 0 for value in used]
    top = max([110.0, *(share * 1.1 for share in shares)])
    lines = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": level,
            "y1": level,
            "line": {"color": "#D55E00", "width": 2, "dash": "solid" if level == 100 else "dash"},
        }
        for level in (80, 100)
    ]
    notes = [
        {"xref": "paper", "x": 1, "y": level, "text": text, "showarrow": False, "xanchor": "left", "yanchor": "middle"}
        for level, text in ((80, "80% alert"), (100, "100%: budget spent"))
    ]
    return {
        "data": [
            {
                "type": "bar",
                "name": "Share of the monthly budget spent",
                "x": list(labels),
                "y": shares,
                "text": list(texts),
                "textposition": "outside",
                "marker": bar_style(0),
                "hovertemplate": "%{x}<br>%{y:.1f}% used: %{text}<extra></extra>",
            }
        ],
        "layout": {
            "yaxis": {"title": {"text": "Share of the monthly budget"}, "ticksuffix": "%", "range": [0, top]},
            "xaxis": {"type": "category"},
            "shapes": lines,
            "annotations": notes,
            "showlegend": False,
            "margin": {"r": 130},
        },
    }


def grouped_bars(
    x: Sequence[str], series: dict[str, Sequence[float | None]], *, y_title: str, money: bool = False
) -> dict[str, Any]:
    """Series side by side for each label (actual against baseline, p50 against p95)."""
    value = "$%{y:,.2f}" if money else "%{y:,.0f}"
    data = [
        {
            "type": "bar",
            "name": name,
            "x": list(x),
            "y": list(values),
            "marker": bar_style(i, name),
            "hovertemplate": "%{fullData.name}<br>%{x}: " + value + "<extra></extra>",
        }
        for i, (name, values) in enumerate(series.items())
    ]
    yaxis: dict[str, Any] = {"title": {"text": y_title}}
    if money:
        yaxis["tickprefix"] = "$"
    return {"data": data, "layout": {"barmode": "group", "yaxis": yaxis, "xaxis": {"type": "category"}}}


def with_rate(figure: dict[str, Any], x: Sequence[str], rates: Sequence[float | None], name: str) -> dict[str, Any]:
    """Add a percentage on a second axis, as markers with their value written beside them."""
    figure["data"].append(
        {
            "type": "scatter",
            "mode": "markers+text",
            "name": name,
            "x": list(x),
            "y": list(rates),
            "yaxis": "y2",
            "text": [f"{rate:.1f}%" if rate is not None else "" for rate in rates],
            "textposition": "top center",
            "marker": {"symbol": "diamond", "size": 10, "color": "#000000"},
            "hovertemplate": "%{x}<br>" + name + ": %{y:.1f}%<extra></extra>",
        }
    )
    figure["layout"]["yaxis2"] = {
        "title": {"text": name},
        "overlaying": "y",
        "side": "right",
        "ticksuffix": "%",
        "range": [0, max([5.0, *(rate * 1.35 for rate in rates if rate is not None)])],
        "showgrid": False,
    }
    figure["layout"]["margin"] = {"r": 60}
    return figure
