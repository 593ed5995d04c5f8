"""The flat parameter buffer: every trainable parameter of a replica in one row of `theta` (R, P)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Block:
    """One contiguous run of parameters: a dense layer (out, in+1) with its bias as the last column, or a norm (2, dim)."""

    kind: str  # "dense" or "norm"
    layer: int  # 1-based layer number, as in W1, b1, gamma1
    shape: tuple[int, int]
    offset: int

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]


@dataclass(frozen=True)
class Layout:
    """Where each block lives in the flat buffer; `P` parameters per replica."""

    blocks: tuple[Block, ...]
    P: int

    @classmethod
    def mlp(cls, dims: list[int], norm: bool) -> "Layout":
        """dims = [D_in, h1, ..., C]; a norm block (gamma, beta) after every hidden dense layer when `norm`."""
        blocks, off = [], 0
        for l, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:]), start=1):
            blocks.append(Block("dense", l, (n_out, n_in + 1), off))
            off += n_out * (n_in + 1)
            if norm and l < len(dims) - 1:
                blocks.append(Block("norm", l, (2, n_out), off))
                off += 2 * n_out
        return cls(tuple(blocks), off)

    def view(self, buf: np.ndarray, block: Block) -> np.ndarray:
        """(R, *block.shape) view of `buf` (R, P); writes go through to the buffer."""
        return buf[:, block.offset : block.offset + block.size].reshape(buf.shape[0], *block.shape)

    def named(self, buf: np.ndarray) -> dict[str, np.ndarray]:
        """Views by name: W_l (R, out, in), b_l (R, out), gamma_l (R, dim), beta_l (R, dim)."""
        out = {}
        for blk in self.blocks:
            v = self.view(buf, blk)
            if blk.kind == "dense":
                out[f"W{blk.layer}"] = v[:, :, :-1]
                out[f"b{blk.layer}"] = v[:, :, -1]
            else:
                out[f"gamma{blk.layer}"] = v[:, 0]
                out[f"beta{blk.layer}"] = v[:, 1]
        return out

    def weight_mask(self) -> np.ndarray:
        """(P,) 1.0 on dense weights, 0.0 on biases and norm parameters: the L2 penalty's support."""
        mask = np.zeros(self.P)
        for blk in self.blocks:
            if blk.kind == "dense":
                m = self.view(mask[None], blk)
                m[:, :, :-1] = 1.0
        return mask

    def from_named(self, arrays: dict[str, np.ndarray], dtype=np.float64) -> np.ndarray:
        """Inverse of `named`: a new (R, P) buffer filled from arrays of shape (R, ...)."""
        R = next(iter(arrays.values())).shape[0]
        theta = np.zeros((R, self.P), dtype=dtype)
        for name, view in self.named(theta).items():
            view[...] = arrays[name]
        return theta
