"""Sharing a study: one tidy table (`export`), TensorBoard event files (`tensorboard`), one offline HTML page
(`html`), and the runs on disk listed and pruned (`inventory`).

A package of its own, not `optbench/report/`: that package renders the terminal (progress bars, tables);
everything here turns run directories into files for other tools and other people. Modules, in data-flow
order: `table` (runs -> tidy rows, through runset's reader), `export` (rows -> csv, jsonl, parquet),
`tensorboard` (runs -> event files; a live observer for train and sweep), `figures` and `html` (runs -> one
self-contained page), `inventory` (`optbench runs`).
"""
