"""configs/examples/fashion-mnist-optimizers.yaml written as a PyTorch user would: the same work, on the same files.

    python bench/torch_fashion.py --data /usr/share/datasets/fashion-mnist --out DIR [--best] [--threads 2]

The four IDX .gz files; 10% of the 60000 training images validate, standardized with the training part's
per-pixel mean and std; a 784-256-256-10 ReLU net with He-normal weights and zero biases, float32; batches of
128 over a fresh shuffle each epoch, 5 epochs; SGD 0.05, momentum 0.005 (mu 0.9), Adam 1e-3. Per run, as
optbench writes: metrics.csv (epoch 0 the initialization's full training and validation evaluation; then each
epoch's mean batch cost and accuracy as seen, validation cost and accuracy, gradient norm and update ratio),
the final evaluation on train, validation and the 10000 t10k images, and the parameters (params.npz).
--best: torch's fastest CPU forms (foreach SGD, fused Adam) instead of the defaults. Prints the steps taken.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

VARIANTS = {"sgd": ("sgd", 0.05, 0.0), "momentum": ("sgd", 0.005, 0.9), "adam": ("adam", 1e-3, None)}


def idx(path: Path) -> np.ndarray:
    """An IDX file (.gz): big-endian dims after a 4-byte magic whose last byte counts them."""
    raw = gzip.decompress(path.read_bytes())
    nd = raw[3]
    dims = np.frombuffer(raw, ">u4", nd, 4).astype(int)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(folder: Path, seed: int, n_train: int = 0):
    """(train, val, test) as float32 tensors; n_train > 0: the first n_train images only (optbench's data.n_train)."""
    X = idx(folder / "train-images-idx3-ubyte.gz").reshape(60000, -1).astype(np.float64)
    y = idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int64)
    if n_train:
        X, y = X[:n_train], y[:n_train]
    Xt = idx(folder / "t10k-images-idx3-ubyte.gz").reshape(10000, -1).astype(np.float64)
    yt = idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    val, tr = perm[:len(y) // 10], perm[len(y) // 10:]
    mu, sd = X[tr].mean(0), X[tr].std(0)
    sd[sd == 0] = 1.0
    f = lambda a: torch.from_numpy(((a - mu) / sd).astype(np.float32))  # noqa: E731
    return (f(X[tr]), torch.from_numpy(y[tr])), (f(X[val]), torch.from_numpy(y[val])), (f(Xt), torch.from_numpy(yt))


def net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = [nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)]
    for m in layers:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


@torch.no_grad()
def evaluate(model, X, y, chunk: int = 4096) -> tuple[float, float]:
    cost = correct = 0.0
    for a in range(0, len(y), chunk):
        z = model(X[a:a + chunk])
        cost += nn.functional.cross_entropy(z, y[a:a + chunk], reduction="sum").item()
        correct += (z.argmax(1) == y[a:a + chunk]).sum().item()
    return cost / len(y), correct / len(y)


def train(variant: str, data, out: Path, best: bool, epochs: int, batch: int = 128, seed: int = 0) -> int:
    (X, y), (Xv, yv), (Xt, yt) = data
    model = net(seed)
    name, lr, mu = VARIANTS[variant]
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=lr, momentum=mu, foreach=True if best else None) if name == "sgd"
           else torch.optim.Adam(params, lr=lr, fused=True if best else None))
    gen = torch.Generator().manual_seed(seed)
    rows = [dict(epoch=0, step=0, lr=lr, **dict(zip(("train_cost", "train_acc"), evaluate(model, X, y))),
                 **dict(zip(("val_cost", "val_acc"), evaluate(model, Xv, yv))))]
    steps = 0
    for e in range(1, epochs + 1):
        perm = torch.randperm(len(y), generator=gen)
        cost = correct = 0.0
        for a in range(0, len(y), batch):
            i = perm[a:a + batch]
            if a + batch >= len(y):  # the update ratio is the epoch's last step's, as optbench logs it
                before = torch.cat([p.detach().reshape(-1) for p in params])
            z = model(X[i])
            loss = nn.functional.cross_entropy(z, y[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            cost += loss.item() * len(i)
            correct += (z.argmax(1) == y[i]).sum().item()
        theta = torch.cat([p.detach().reshape(-1) for p in params])
        gnorm = torch.cat([p.grad.reshape(-1) for p in params]).norm().item()
        vc, va = evaluate(model, Xv, yv)
        rows.append(dict(epoch=e, step=steps, lr=lr, train_cost=cost / len(y), train_acc=correct / len(y),
                         val_cost=vc, val_acc=va, grad_norm=gnorm,
                         update_ratio=((theta - before).norm() / theta.norm()).item()))
    d = out / variant
    d.mkdir(parents=True)
    cols = list(rows[-1])
    (d / "metrics.csv").write_text("\n".join([",".join(cols)] + [",".join(repr(r.get(c, "")) for c in cols)
                                                                  for r in rows]) + "\n")
    final = {f"{k}_{m}": v for k, (X_, y_) in (("train", (X, y)), ("val", (Xv, yv)), ("test", (Xt, yt)))
             for m, v in zip(("cost", "acc"), evaluate(model, X_, y_))}
    (d / "summary.json").write_text(json.dumps({"steps": steps, "final_eval": final}))
    np.savez(d / "params.npz", *[p.detach().numpy() for p in params])
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--best", action="store_true", help="foreach SGD and fused Adam")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=0, help="the first N training images only (optbench's data.n_train)")
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load(args.data, seed=0, n_train=args.n_train)
    print(sum(train(v, data, args.out, args.best, args.epochs) for v in VARIANTS))


if __name__ == "__main__":
    main()
