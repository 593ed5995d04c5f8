"""Data movement for a group's training: the data as one matrix, each epoch's example order, the batch buffers.

Every replica of a group sees its own shuffled copy of the data. Each epoch gathers those copies into G
(D+1+C, R, N_e) with one `take`, and batch b is the fixed slice b of G, so a compiled step reads the same
memory every epoch; its logits go to slice b of Zall (R, C, N_e), from which the epoch's cost is computed once.
Data too large to copy per epoch is gathered batch by batch instead. Randomness: each replica's own "shuffle"
(and "mixup", "noise") generator; runs with equal seeds see equal orders, drawn once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from optbench import compat
from optbench.checkpoint import advanced
from optbench.losses import encode_targets


def take(a: np.ndarray, idx: np.ndarray, axis: int, out: np.ndarray) -> None:
    """out <- a indexed by idx along axis. The indices are valid by construction, and mode="clip" spares
    the temporary that NumPy's default mode makes for out= (1.6x faster on moons, 2.7x on MNIST-sized rows)."""
    np.take(a, idx, axis=axis, out=out, mode="clip")


def _targets(ds, loss: str) -> np.ndarray:
    return encode_targets(loss, ds.y, ds.n_classes)


class DataMatrix:
    """The training and validation parts as matrices [X^T; 1; Y^T] of shape (D+1+C, N).

    Small data is stored features-major, so gathering an epoch's columns stays in cache. Large
    data (over ROWS_MAJOR_BYTES) is stored examples-major, (N, D+1+C), and `train` is its transposed
    view: a batch is then a gather of whole rows, ten times faster than of scattered columns.
    """

    ROWS_MAJOR_BYTES = 16 * 2**20

    def __init__(self, split, loss: str, dtype):
        N, D = split.train.X.shape
        C = _targets(split.train, loss).shape[1]
        self.D, self.C, self.N = D, C, N
        self.rows = None
        if N * (D + 1 + C) * np.dtype(dtype).itemsize > self.ROWS_MAJOR_BYTES:
            self.rows = self._matrix(split.train, loss, dtype)
            self.train = self.rows.T
        else:
            self.train = np.ascontiguousarray(self._matrix(split.train, loss, dtype).T)
        self.val = None if split.val is None else self._matrix(split.val, loss, dtype).T
        self.test = None if split.test is None else self._matrix(split.test, loss, dtype).T

    @classmethod
    def shared(cls, split, loss: str, dtype):
        """(layout, split with its features as read-only views of the layout's matrices): one copy of the data,
        shared by every group that trains on it (DataCache.derived), which none of them may write."""
        data = cls(split, loss, dtype)
        parts = {}
        for name in ("train", "val", "test"):
            m = getattr(data, name)
            if m is not None:
                m.flags.writeable = False
                parts[name] = dataclasses.replace(getattr(split, name), X=m[: data.D].T)
        if data.rows is not None:
            data.rows.flags.writeable = False
        return data, dataclasses.replace(split, **parts)

    @staticmethod
    def _matrix(ds, loss, dtype):
        """(N, D+1+C) rows [x, 1, y], built in place in the target dtype (no float64 detour for float32)."""
        N, D = ds.X.shape
        Y = _targets(ds, loss)
        M = np.empty((N, D + 1 + Y.shape[1]), dtype=dtype)
        M[:, :D] = ds.X
        M[:, D] = 1.0
        M[:, D + 1 :] = Y
        return M


class Augmentation:
    """Label smoothing, mixup and input noise, per replica, on a gathered batch G (D+1+C, R, B)."""

    def __init__(self, smooth: np.ndarray, mixup: np.ndarray, noise: np.ndarray, *, D: int, C: int, loss: str, gens):
        self.smooth, self.mixup, self.noise = smooth, mixup, noise  # (R, 1) columns; 0 is off
        self.D, self.C, self.loss, self.gens = D, C, loss, gens
        self.on = bool(noise.any() or mixup.any() or smooth.any())

    def __call__(self, G: np.ndarray) -> None:
        D, C = self.D, self.C
        if self.smooth.any():
            eps = self.smooth.reshape(1, -1, 1)
            G[D + 1 :] *= 1.0 - eps
            if self.loss != "bce":  # bce's signed targets smooth towards 0, i.e. y towards 1/2
                G[D + 1 :] += eps / C
        if self.mixup.any():
            for r, g in enumerate(self.gens):
                a = self.mixup[r, 0]
                if a > 0:
                    lam = g["mixup"].beta(a, a)
                    perm = g["mixup"].permutation(G.shape[2])
                    G[:, r, :] = lam * G[:, r, :] + (1.0 - lam) * G[:, r, perm]
        if self.noise.any():
            for r, g in enumerate(self.gens):
                s = self.noise[r, 0]
                if s > 0:
                    G[:D, r, :] += s * g["noise"].standard_normal((D, G.shape[2]))


class Batches:
    """A group's epochs of batches: `plan(...)` compiles one step per batch, `gather(e)` fills them for epoch e."""

    EPOCH_GATHER_BYTES = 64 * 2**20  # above this, gather batch by batch rather than a whole epoch at once
    PERM_KEY_BYTES = 16 * 2**20  # shuffle keys drawn ahead, at most 32 epochs' worth
    PACK_MAX_N = 2**16  # up to this many examples the index rides in the keys' low bits (see _permutation)

    def __init__(self, data: DataMatrix, train, seeds: list[int], gens: list[dict], augment: Augmentation, dtype):
        R, N = len(seeds), data.N
        self.data, self.R, self.dtype, self.gens, self.seeds, self.augment = data, R, np.dtype(dtype), gens, seeds, augment
        self.sampling, self.compat = train.sampling, train.compat  # train: sections.Train
        self.B = B = N if train.batch_size == "full" else train.batch_size
        self.n_epoch = n_e = (train.iterations_per_epoch or math.ceil(N / B)) * B if self.sampling == "random" else N
        self.bounds = [(s, min(s + B, n_e)) for s in range(0, n_e, B)]
        self.Zall = np.empty((data.C, R, n_e), dtype=self.dtype).transpose(1, 0, 2)  # (R, C, N_e) logits
        self.Yall = None  # (R, C, N_e) targets as each batch saw them: set by plan
        # runs with equal seeds see equal batches (a sweep's learning rates, say): their order is drawn once
        first: dict[int, int] = {}
        src = [first.setdefault(s, r) for r, s in enumerate(seeds)]
        self.owners = sorted(first.values())  # the replicas whose shuffle streams are drawn
        self.inv = np.array([self.owners.index(s) for s in src])  # replica -> its owner's row
        self.G = self.Gu = None  # the epoch's gathered examples (D+1+C, R, N_e); Gu: one per distinct order
        self.per_batch = False  # large data: each step gathers its own batch
        self.order = None  # (R, N_e) this epoch's example indices
        self.perms = self.keys = self.refill = None  # shuffle keys drawn ahead (see _permutation)
        self.perm_at = 0
        self.compat_state = np.random.RandomState() if self.compat == "dlai" else None

    @property
    def full(self) -> bool:
        """Full batch in a fixed order: nothing to gather, ever."""
        return self.B >= self.data.N and self.sampling == "epoch" and not self.augment.on

    def plan(self, compile_step: Callable) -> list[Callable[[], None]]:
        """One step per batch, each `compile_step(A0, Y, Z)` on fixed views of the buffers it reads and writes."""
        D, C, R, n_e, M = self.data.D, self.data.C, self.R, self.n_epoch, self.data.train
        Zv = self.Zall
        if self.full:  # the order of examples does not change the gradient
            self.Yall = M[None, D + 1 :]
            return [compile_step(M[None, : D + 1], self.Yall, Zv)]
        rows = D + 1 + C
        if self.data.rows is None and rows * R * n_e * self.dtype.itemsize <= self.EPOCH_GATHER_BYTES:
            self.G = np.empty((rows, R, n_e), dtype=self.dtype)
            self.G[D] = 1.0  # the bias input
            Gt = self.G.transpose(1, 0, 2)
            self.Yall = Gt[:, D + 1 :]
            return [compile_step(Gt[:, : D + 1, a:b], Gt[:, D + 1 :, a:b], Zv[:, :, a:b]) for a, b in self.bounds]
        return self._plan_per_batch(compile_step)

    def _plan_per_batch(self, compile_step: Callable) -> list[Callable[[], None]]:
        """Large data: a batch buffer per batch size, filled just before each step (one buffer, warm in cache)."""
        D, C, R, n_e, M, Mrows = self.data.D, self.data.C, self.R, self.n_epoch, self.data.train, self.data.rows
        rows = D + 1 + C
        self.Yall = np.empty((C, R, n_e), dtype=self.dtype).transpose(1, 0, 2)
        self.per_batch = True
        steps, bufs = [], {}
        for a, b in self.bounds:
            if b - a not in bufs:
                bufs[b - a] = np.empty((R, b - a, rows) if Mrows is not None else (rows, R, b - a), dtype=self.dtype)
            Gb = bufs[b - a]
            if Mrows is not None:  # gather whole rows (examples) into (R, B, rows); use it transposed
                Gv = Gb.transpose(2, 0, 1)  # (rows, R, B) view, the layout Augmentation expects
                fill = lambda idx, Gb=Gb: take(Mrows, idx, 0, Gb)  # noqa: E731
            else:
                Gv = Gb
                fill = lambda idx, Gb=Gb: take(M, idx, 1, Gb)  # noqa: E731
            Gt = Gv.transpose(1, 0, 2)
            inner = compile_step(Gt[:, : D + 1], Gt[:, D + 1 :], self.Zall[:, :, a:b])

            def step(a=a, b=b, Gv=Gv, fill=fill, inner=inner):
                fill(self.order[:, a:b])
                if self.augment.on:
                    self.augment(Gv)
                self.Yall[:, :, a:b] = Gv[D + 1 :].transpose(1, 0, 2)
                inner()

            steps.append(step)
        return steps

    def gather(self, e: int) -> np.ndarray | None:
        """Epoch e's example order (R, N_e), from each replica's seed (equal seeds, equal orders); fills G with the
        examples (in whole-epoch mode). None for a full batch in a fixed order."""
        if self.G is None and not self.per_batch:
            return None
        uorder = self._orders(e)
        shared = len(uorder) < self.R
        self.order = uorder[self.inv] if shared else uorder
        if self.G is not None:
            self._fill(uorder, shared)
        return self.order

    def _orders(self, e: int) -> np.ndarray:
        """(U, N_e): this epoch's order for each of the U distinct seeds."""
        N = self.data.N
        if self.sampling == "random":
            return np.stack([self.gens[o]["shuffle"].integers(0, N, size=self.n_epoch) for o in self.owners])
        if self.B >= N:
            return np.broadcast_to(np.arange(N), (len(self.owners), N))
        if self.compat == "dlai":
            return np.stack([compat.epoch_order(e - 1, N, self.seeds[o], self.compat_state) for o in self.owners])
        return self._permutation()

    def _fill(self, uorder: np.ndarray, shared: bool) -> None:
        """G <- the examples in each replica's order, augmented."""
        M, D, G = self.data.train, self.data.D, self.G
        if shared:  # gather each distinct order once, then copy whole rows to the replicas sharing it
            if self.Gu is None:
                self.Gu = np.empty((G.shape[0], len(uorder), G.shape[2]), dtype=G.dtype)
                self.Gu[D] = 1.0
            G = self.Gu
        if self.augment.on:  # mixup blends every row, the ones too: gather them afresh
            take(M, uorder, 1, G)
        else:  # the features and the targets; the ones row stays as plan set it (a quarter less on moons)
            take(M[:D], uorder, 1, G[:D])
            take(M[D + 1 :], uorder, 1, G[D + 1 :])
        if shared:
            take(G, self.inv, 1, self.G)
        if self.augment.on:
            for a, b in self.bounds:
                self.augment(self.G[:, :, a:b])

    def _permutation(self) -> np.ndarray:
        """This epoch's order (U, N) for the U distinct seeds: uniform permutations, several epochs drawn at a time.

        Each distinct seed's first replica fills its rows of keys from its own shuffle generator (drawing
        k epochs at once gives the same numbers as k draws of one), and sorting a row of iid uniform keys gives a uniform
        permutation. Positive doubles order as their bit patterns, so for N <= PACK_MAX_N each key's
        lowest bits are replaced by its position: a plain float sort (2.5x faster than argsort) then
        carries the positions along, and they are unique, so the order is the same for any sort
        algorithm, i.e. for any group. Keys equal in their remaining 36+ bits (probability N^2 / 2^37
        per row at most) keep their positions' order.
        """
        if self.perms is None or self.perm_at == self.perms.shape[1]:
            self._draw_ahead()
        self.perm_at += 1
        return np.ascontiguousarray(self.perms[:, self.perm_at - 1])  # take() is a third faster with it

    def _draw_ahead(self) -> None:
        U, N = len(self.owners), self.data.N
        if self.keys is None:
            k = max(1, min(32, self.PERM_KEY_BYTES // (8 * U * N)))
            self.keys = np.empty((U, k, N))
        keys = self.keys
        # where each stream stood before drawing ahead: a checkpoint's state is this one, advanced by the epochs used
        self.refill = [self.gens[r]["shuffle"].bit_generator.state for r in self.owners]
        for u, r in enumerate(self.owners):
            self.gens[r]["shuffle"].random(out=keys[u])
        if N <= self.PACK_MAX_N:
            bits = keys.view(np.uint64)
            low = np.uint64((1 << max(1, (N - 1).bit_length())) - 1)
            bits &= ~low
            bits |= np.arange(N, dtype=np.uint64)
            keys.sort(axis=2)
            bits &= low
            self.perms = bits.view(np.int64)
        else:
            self.perms = keys.argsort(axis=2)
        self.perm_at = 0

    def shuffle_state(self, r: int) -> dict:
        """Replica r's shuffle stream at this epoch's end: its seed's owner's stream (the one drawn), minus what
        _permutation drew ahead, so that any group, whatever it draws ahead, goes on with the same orders."""
        u = int(self.inv[r])
        if self.perms is None:
            return self.gens[self.owners[u]]["shuffle"].bit_generator.state
        return advanced(self.refill[u], self.perm_at * self.data.N)

    def span(self, i: int) -> tuple[int, int]:
        """The columns of Zall and Yall that batch i writes."""
        return self.bounds[i] if len(self.bounds) > 1 else (0, self.n_epoch)


__all__ = ["Augmentation", "Batches", "DataMatrix", "take"]
