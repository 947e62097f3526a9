"""Each chart of the dashboard as a table (for the page and its CSV) and a figure drawn from it.

``base`` holds ``Panel``, the helpers the panels share and the ``Dashboard``, which reads once what
they all need; each panel is a function of a ``Dashboard``, grouped by what it tells: ``traffic``
(decisions, tiers, rules), ``money`` (spend, budget, savings), ``quality`` (latency) and
``governance`` (lifecycle, refusals). ``PANELS`` names the panels, each with a CSV, in page order.
"""

from collections.abc import Callable

from console.dashboard.panels.base import Budgeted, Dashboard, Panel
from console.dashboard.panels.governance import lifecycle, refusals
from console.dashboard.panels.money import budget, savings, spend
from console.dashboard.panels.quality import latency
from console.dashboard.panels.traffic import decisions, rules, tiers

__all__ = ["PANELS", "Budgeted", "Dashboard", "Panel"]

PANELS: dict[str, Callable[[Dashboard], Panel]] = {
    "spend": spend,
    "budget": budget,
    "savings": savings,
    "decisions": decisions,
    "tiers": tiers,
    "rules": rules,
    "latency": latency,
    "lifecycle": lifecycle,
    "refusals": refusals,
}
