"""Run directories, the contract between `train` and `compare`/`plot`.

    runs/<label>-s<seed>-<YYYYmmdd-HHMMSS>-<4 hex>/
      config.yaml    the resolved config of this run; `optbench train` on it reruns it exactly
      metrics.csv    one row per epoch (epoch 0 = before training), written at most every FLUSH_EVERY seconds
      summary.json   status, reason, final and best metrics, fingerprints, versions
      params.npz     final parameters (and batch-norm statistics) by name, no pickle
      params_init.npz the parameters training started from, the same keys (train.epochs: 0 evaluates them only)
      activations.npz  hidden activations on up to 256 training examples, at init and at the end
      iterations.csv per-iteration batch costs, when train.log_iterations is set
      trajectory.npz the path `xy` (steps+1, 2) of a run on a 2-D problem
      snapshots.npz  epoch (S,), theta (S, P): the flat parameters every train.snapshots_every epochs (optbench/snapshots.py)

Directories appear atomically (written under a temporary name, then renamed) and are never overwritten.
A group's directories are made in one pass (one listing of the runs directory, the owner and versions
found once, each metrics.csv opened once); its rows are kept in memory and written in blocks: at the first
epoch, then at most every FLUSH_EVERY seconds, before every checkpoint, at the end and when training stops,
so a kill -9 loses at most the rows of the last interval, and a stop (Ctrl-C, SIGTERM) none.

One module per part of the contract:

    columns.py      metrics.csv's columns and the text of its rows
    status.py       summary.json's statuses; `crashed` for a dead writer; stale temporary directories
    summary.py      summary.json's content
    tracks.py       first, last and best value of the tracked columns, as the rows are written
    checkpoints.py  the checkpoint slots of an open run and the config hash they belong to
    writing.py      a failed write as one RunWriteError line; atomic replacement of a file
    writer.py       RunWriter: a group's directories opened, rows written in blocks, finished
    read.py         a run directory read back (Run), or CorruptRun saying why not
"""
