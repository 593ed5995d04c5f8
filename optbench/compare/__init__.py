"""`optbench compare`: one row per label, aggregated over seeds, with paired statistics against the best label.

Data flows one way: read (run directories -> RunFacts) -> aggregate (RunFacts grouped by label and config
-> Row) -> render (Rows -> rich table, plain text, markdown, csv, json or latex). Only `compare_command` prints.
Modules, in that order: `read` (options, RunFacts, grouping), `stats` (Rows, paired bootstrap, ensembles,
health, sweeps), `tables` (the columns of each table), `render` (the formats and `compare_command`).
"""

from optbench.compare.read import FORMATS, RunFacts, Threshold, check_options, group_runs, parse_threshold, read_facts
from optbench.compare.render import (RENDERERS, compare_command, records, render_csv, render_json, render_latex,
                                     render_markdown, render_plain)
from optbench.compare.stats import Comparison, Row, compare, flatten, varied_keys
from optbench.compare.tables import Column, results_columns, versus_columns

__all__ = [
    "FORMATS", "RunFacts", "Threshold", "check_options", "group_runs", "parse_threshold", "read_facts",
    "RENDERERS", "compare_command", "records", "render_csv", "render_json", "render_latex", "render_markdown",
    "render_plain", "Comparison", "Row", "compare", "flatten", "varied_keys", "Column", "results_columns",
    "versus_columns",
]
