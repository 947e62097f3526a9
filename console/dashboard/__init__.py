"""The governance dashboard on the console's home page.

Everything here reads the usage rollups kept by ``audit.rollups`` (``DailyUsageRollup`` for whole
days, ``UsageRollup`` for single hours) and the small registry and policy tables, never the audit
events themselves: a month of traffic is a few thousand rollup rows however many decisions it
held. ``filters`` turns the query string into a scope, ``queries`` sums rollups for it, ``panels``
shapes each chart's table, ``savings`` prices the baseline, ``governance`` lists what waits for
people and ``charts`` renders plotly fragments.
"""
