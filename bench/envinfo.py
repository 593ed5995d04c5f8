"""What a bench ran on (CPU, versions, BLAS libraries and their kernels, thread counts), and a clean BLAS environment.

Every bench calls `clean_process()` first, before anything imports numpy: OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE select numpy's OpenBLAS kernel and cache blocking at library load, but never reach
torch's MKL, so an inherited value biases every numpy-against-torch figure. They are removed for the
bench's own process (and the processes it starts) only; tests and CI never change them.
"""

from __future__ import annotations

import os
import platform
import sys

OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MARK = "OPTBENCH_BENCH_REMOVED"  # set on re-exec: what the parent removed, so the child can say so
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def scrubbed(environ) -> tuple[dict, dict]:
    """(a copy of environ without the OpenBLAS overrides, the removed {name: value})."""
    removed = {k: environ[k] for k in OVERRIDES if k in environ}
    return {k: v for k, v in environ.items() if k not in OVERRIDES}, removed


def clean_process(argv=None) -> dict:
    """Remove the overrides from this process's environment before numpy loads; re-exec if numpy is loaded already.

    Returns the removed {name: value} (also after a re-exec, through MARK)."""
    env, removed = scrubbed(os.environ)
    if removed and "numpy" in sys.modules:  # too late for this process: OpenBLAS read them at load
        env[MARK] = ";".join(f"{k}={v}" for k, v in removed.items())
        argv = argv if argv is not None else [sys.executable, *sys.argv]
        os.execve(sys.executable, argv, env)
    for k in removed:
        del os.environ[k]  # unsetenv: OpenBLAS, loaded later, and child processes see the clean environment
    inherited = os.environ.pop(MARK, "")
    for item in filter(None, inherited.split(";")):
        k, _, v = item.partition("=")
        removed[k] = v
    return removed


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def environment(removed: dict | None = None) -> dict:
    """The keys a bench prints: cpu, cores, versions, blas (threadpoolctl's libraries), torch threads, env, load."""
    import numpy as np
    from threadpoolctl import threadpool_info

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _version("torch"),  # imported here so that its OpenMP runtime is listed below
        "sklearn": _version("sklearn"),
        "threadpoolctl": _version("threadpoolctl"),
        "numpy_blas": _numpy_blas(),
        "blas": [{k: lib.get(k) for k in ("user_api", "internal_api", "prefix", "version", "architecture",
                                           "threading_layer", "num_threads", "filepath")} for lib in threadpool_info()],
        "env": {k: os.environ.get(k) for k in THREAD_VARS + OVERRIDES},
        "removed": dict(removed or {}),
        "load": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if info["torch"] is not None:
        import torch

        cfg = torch.__config__.show()
        blas = next((p.split("=", 1)[1] for p in cfg.replace(",", " ").split() if p.startswith("BLAS_INFO=")), "?")
        info["torch_blas"] = blas
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    return info


def _numpy_blas() -> str:
    """numpy's own build-time BLAS name (np.show_config), e.g. scipy-openblas 0.3.31."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # an old or unusual numpy build: the threadpoolctl entries still say it
        return "?"


def _owner(path: str | None) -> str:
    """Which package bundles a loaded library: numpy, scipy, torch, ... (from its file path)."""
    parts = (path or "").replace("\\", "/").split("/")
    for p in reversed(parts[:-1]):
        name = p.removesuffix(".libs")
        if name not in ("lib", "lib64", "site-packages") and not name.startswith("python"):
            return name
    return "?"


def describe(info: dict) -> list[str]:
    """The environment as lines of text, the first line of every bench's output."""
    load = info["load"]
    lines = [
        f"cpu: {info['cpu']}; {info['cores']} cores ({info['affinity']} usable); "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" if load else f"cpu: {info['cpu']}",
        f"versions: python {info['python']}, numpy {info['numpy']}, torch {info['torch'] or '-'}, "
        f"scikit-learn {info['sklearn'] or '-'}, threadpoolctl {info['threadpoolctl']}",
        f"numpy BLAS: {info['numpy_blas']}",
    ]
    for lib in info["blas"]:
        lines.append(f"  loaded by {_owner(lib['filepath'])}: {lib['internal_api']} {lib['version'] or ''} ({lib['user_api']}, {lib['prefix']}) "
                     f"kernel {lib.get('architecture') or '-'}, {lib['num_threads']} threads"
                     + (f", {lib['threading_layer']}" if lib.get("threading_layer") else ""))
    if info.get("torch"):
        lines.append(f"torch: BLAS {info['torch_blas']}, CPU capability {info['torch_cpu_capability']}, "
                     f"{info['torch_threads']} intra-op / {info['torch_interop_threads']} inter-op threads")
    lines.append("thread variables: " + ", ".join(f"{k}={info['env'][k] or 'unset'}" for k in THREAD_VARS))
    if info["removed"]:
        lines.append("removed for this process before numpy loaded: "
                     + ", ".join(f"{k}={v}" for k, v in info["removed"].items()))
    else:
        lines.append(f"{' and '.join(OVERRIDES)}: not set (nothing removed)")
    return lines
