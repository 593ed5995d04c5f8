"""The checkpoint slots of an open run, and the hash of the config a checkpoint belongs to."""

from __future__ import annotations

from optbench.yamlio import dump_yaml

CHECKPOINT = "checkpoint.npz"  # the state of an open run at its last checkpointed epoch; removed when it finishes
CHECKPOINTS = (CHECKPOINT, "checkpoint.1.npz")  # the two slots written in turn (checkpoint.overwrite)


def config_hash(cfg: dict) -> str:
    """The hash of a resolved config's text (its config.yaml): a checkpoint belongs to exactly this config."""
    return text_hash(dump_yaml(cfg))


def text_hash(text: str) -> str:
    """config_hash of the config whose config.yaml is `text`."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
