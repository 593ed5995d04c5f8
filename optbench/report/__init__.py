"""Rendering for the CLI: progress while training, result tables, registry listings. Rich on a terminal, plain text in pipes.

    table.py     a table within the terminal's width (show_table), number cells (num)
    progress.py  TrainProgress and SweepProgress: a rich bar on a terminal, plain lines in pipes
    outcomes.py  what train and sweep did: print_train_table, print_sweep_outcome
    listing.py   `optbench list`: print_registry, print_entry (an optimizer's reference form)
    gradcheck.py `optbench gradcheck`: print_gradcheck
"""
