"""The figures of `optbench plot`, one module per family; `optbench.plot` is the entry point.

Data flows one way: run directories -> `data` (select, group by label, aggregate over seeds) -> a drawing
module fills matplotlib Axes. Only these modules import matplotlib, and only `optbench.plot` imports them.
"""
