"""Where groups train and who writes their run directories: this process, local workers, or a Dask cluster.

A *unit* is a list of resolved configs that trains as one vectorized group (a whole group, or a chunk of a
large one: a run's numbers do not depend on its group); a Job is a unit with the place its run directories
go. In this process and in local worker processes (one machine, one file system) the trainer's process
(or thread) writes them, so writing runs in parallel too; a Dask worker returns its `execute.GroupTrace` as data and
the client writes, so the cluster needs no shared file system.

units (cutting groups into units by estimated cost), jobs (Job, Written, Lost; training and writing a unit),
backend (the Backend protocol and which one --jobs / --scheduler open), inprocess, local (LocalPool: a thread
here and worker processes), process (a worker process's side), cluster (Dask), driving (drive: every job
through a backend, stop requests, lost workers).
"""
