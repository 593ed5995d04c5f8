"""optbench: compare neural-network optimizers with a vectorized NumPy engine."""

__version__ = "0.1.0"
