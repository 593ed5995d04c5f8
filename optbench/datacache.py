"""The data of one command, loaded once: split data by (resolved data section, training dtype), passed explicitly.

Config validation loads through it and the trainer reads the same entry, so an experiment's runs that share
a data section share one copy of the arrays, already in the dtype they train in. A form derived from the
data (the trainer's [X^T; 1; Y^T] layout) is kept beside its entry, and the entry's features become views of
it: one copy held, whatever the number of groups training on it. Nothing is module-level: whoever runs a
command makes a cache and hands it down (config.expand, the trainer, the workers).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Callable

import numpy as np

from optbench.errors import OptbenchError

MAX_ENTRIES = 32  # distinct data sections kept (a sweep over folds keeps every fold's split)


class DataCache:
    """section, dtype -> data.load(section, dtype=dtype), each distinct pair loaded once; `loads` counts the loads."""

    def __init__(self, load: Callable | None = None, max_entries: int = MAX_ENTRIES):
        from optbench import data  # here, not at import: `import optbench.config` stays light for the CLI

        self._load = load or data.load
        self._max = max_entries
        self._items: OrderedDict[tuple[str, str], object] = OrderedDict()  # key -> Split
        self._derived: dict[tuple, object] = {}  # (key, name) -> a form built from the entry's Split
        self.loads = 0

    @staticmethod
    def key(section: dict, dtype) -> tuple[str, str] | None:
        """(the section with every default filled in, as sorted JSON; dtype name), or None when the section is invalid."""
        from optbench.data import resolved_section

        try:
            return json.dumps(resolved_section(section), sort_keys=True, default=repr), np.dtype(dtype).name
        except (OptbenchError, ValueError, TypeError, KeyError, AttributeError):
            return None  # data.load says what is wrong with it, in its own words

    def get(self, section: dict, dtype="float64"):
        """The Split of `section` in `dtype` (float64 or float32), loaded on first use."""
        key = self.key(section, dtype)
        if key is not None and key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        self.loads += 1
        split = self._load(dict(section), dtype=np.dtype(dtype))
        if key is not None:
            self._put(key, split)
        return split

    def derived(self, section: dict, dtype, name, build: Callable):
        """build(split) -> (value, split'), made once per (section, dtype, name) and kept with the entry;
        split' (the same numbers, e.g. views into value) replaces the entry's Split, so one copy is held."""
        split = self.get(section, dtype)
        key = self.key(section, dtype)
        if key is not None and (key, name) in self._derived:
            return self._derived[key, name]
        value, slim = build(split)
        if key is not None:
            self._items[key] = slim
            self._derived[key, name] = value
        return value

    def put(self, section: dict, dtype, split) -> None:
        """Hold `split` as the data of (section, dtype): a Dask worker gets the client's arrays with its task."""
        key = self.key(section, dtype)
        if key is None:
            raise OptbenchError(f"data: {section!r} is not a valid data section")
        self._put(key, split)

    def _put(self, key, split) -> None:
        self._items[key] = split
        while len(self._items) > self._max:
            old, _ = self._items.popitem(last=False)  # the least recently used, and what was built from it
            self._derived = {k: v for k, v in self._derived.items() if k[0] != old}
