"""Bounded YAML reading: every document read (configs, run files) is a regular file of bounded size whose
tree, once aliases are expanded, has a bounded number of nodes and a bounded depth.

A 500-byte document of nested aliases expands to billions of nodes; PyYAML builds it cheaply as shared
objects, but every later deep copy, merge or validation pays the full expansion. So the composer counts
the expanded size and depth of every node as it is built (an alias costs the size of what it names) and
stops at the first node over budget, before anything is constructed: time and memory stay proportional
to the text read. Writing (`dump_yaml`) lives here too, so that run directories are read and written
without the config models.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, SequenceNode

from optbench.errors import OptbenchError

MAX_BYTES = 1 << 20  # a config is a few hundred bytes; a run's config.yaml a few kilobytes
MAX_NODES = 50_000  # scalars + collections after alias expansion
MAX_DEPTH = 64  # nesting levels after alias expansion; shipped configs use 4


class _Budget(yaml.YAMLError):
    """A document over budget; `problem` and `problem_mark` as PyYAML's own errors, so one handler fits both."""

    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts expanded nodes and depth while composing; reads `1e-3` as a float (YAML 1.1 reads
    it as a string), as users mean."""

    def __init__(self, stream):
        super().__init__(stream)
        self._size: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)
        self._total = 0  # nodes of the expanded document so far
        self._open = 0  # collections being composed (the depth of the text itself)

    def _spend(self, n: int, mark) -> None:
        self._total += n
        if self._total > MAX_NODES:
            raise _Budget(f"YAML document too large: more than {MAX_NODES:,} nodes once aliases are expanded", mark)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._size:
                raise _Budget(f"YAML alias *{event.anchor} refers to a node that contains it", event.start_mark)
            node = super().compose_node(parent, index)  # an undefined alias is PyYAML's error
            self._spend(self._size[id(node)][0], event.start_mark)
            return node
        mark = self.peek_event().start_mark
        self._open += 1
        if self._open > MAX_DEPTH:
            raise _Budget(f"YAML document nested too deeply: more than {MAX_DEPTH} levels", mark)
        self._spend(1, mark)
        node = super().compose_node(parent, index)
        self._open -= 1
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [c for pair in node.value for c in pair]
        else:
            children = []
        sizes = [self._size[id(c)] for c in children]
        depth = 1 + max((d for _, d in sizes), default=0)
        if depth > MAX_DEPTH:  # deep through aliases, though shallow as written
            raise _Budget(f"YAML document nested too deeply: more than {MAX_DEPTH} levels once aliases are expanded", mark)
        self._size[id(node)] = (1 + sum(n for n, _ in sizes), depth)
        return node


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _unshared(value: Any) -> Any:
    """A tree copy: an alias becomes its own copy, so changing one key (--set) never changes another."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: same text, ~10x faster


def dump_yaml(data: Any) -> str:
    """The YAML text of a config or record, keys in their order (what runs write as config.yaml)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None)


def parse_yaml(text: str, source: str) -> Any:
    """yaml.safe_load, bounded (MAX_NODES expanded, MAX_DEPTH levels); any error is one line naming source and line."""
    try:
        return _unshared(yaml.load(text, Loader=_Loader))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source} line {mark.line + 1}" if mark is not None else source
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        kind = "" if isinstance(err, _Budget) else "YAML syntax error: "
        raise OptbenchError(f"{where}: {kind}{problem}") from None
    except RecursionError:  # e.g. a chain of thousands of merge keys, each flattened into the next
        raise OptbenchError(f"{source}: YAML document nested too deeply (merge keys or aliases)") from None


def read_text(path: str | Path, what: str = "config file") -> str:
    """The text of a regular file of at most MAX_BYTES; a FIFO, device, directory or symlink loop is refused
    without blocking (opened non-blocking, checked with fstat before any read)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise OptbenchError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise OptbenchError(f"{path}: is a directory, not a regular file") from None
    except OSError as err:
        raise OptbenchError(f"{path}: cannot open {what} ({err.strerror or err.__class__.__name__})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise OptbenchError(f"{path}: is a directory, not a regular file")
        if not stat.S_ISREG(st.st_mode):
            raise OptbenchError(f"{path}: not a regular file (a FIFO, socket or device; accepted: a YAML file)")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as err:
        raise OptbenchError(f"{path}: cannot read {what} ({err.strerror or err.__class__.__name__})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        size = max(st.st_size, len(data))
        raise OptbenchError(f"{path}: {what} too large: {size:,} bytes (accepted: at most {MAX_BYTES:,})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise OptbenchError(f"{path}: {what} is not UTF-8 text (byte {err.start})") from None


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """read_text + parse_yaml: the one way a YAML file is read."""
    return parse_yaml(read_text(path, what), str(path))
