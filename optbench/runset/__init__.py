"""Which runs belong together: one reader, one grouping and one default for compare, plot and sweep results.

Reading: paths (run directories, directories holding runs, sweep directories holding sweep.json) -> the
readable runs, each once; a bad run costs one warning line, never the command, whatever its files hold.
A run is (sweep, label, config_key, replicate): the same config and seed twice is one run, the newest
finished one (a rerun). Grouping: one group per label and config, named by the label and the config keys
that differ within the label (`sgd lr=0.1`). Called bare, compare and plot take the newest experiment.

    finding.py   the run directories under some paths (sweep directories opened)
    reading.py   read: every readable run under some paths, each checked (content.py), duplicates resolved
    content.py   what compare and plot rely on in a run's files: types, epochs 0..E, sane npz headers
    identity.py  which runs are one run (config_key, replicate, identity) and which of them is kept (distinct)
    grouping.py  group: one RunGroup per label and config, with its display name
    default.py   default_paths: the newest experiment under a runs directory
    values.py    what they share: the warning callback's type, kind tests, a cut display text
"""
