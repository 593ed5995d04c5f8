"""Figure sizes that stay readable and bounded: panel grids that wrap, no side over MAX_PX pixels when saved."""

from __future__ import annotations

import math

MAX_PX = 2400
SAVE_DPI = 120  # style.RC["savefig.dpi"]
MAX_INCHES = MAX_PX / SAVE_DPI - 0.05  # a little under: constrained layout rounds up


def bounded(width: float, height: float) -> tuple[float, float]:
    """(width, height) in inches scaled down together so that neither side exceeds MAX_INCHES."""
    f = min(1.0, MAX_INCHES / width, MAX_INCHES / height)
    return width * f, height * f


def grid_shape(n: int, per_row: int) -> tuple[int, int]:
    """(rows, cols) for n panels, at most per_row to a row, rows filled evenly (7 panels: 2 x 4, not 4 + 3 ragged)."""
    cols = min(n, per_row)
    rows = math.ceil(n / cols)
    return rows, math.ceil(n / rows)


def panel_grid(n: int, size: tuple[float, float], per_row: int, extra: tuple[float, float] = (0.0, 0.8)):
    """(rows, cols, figure width, figure height): n panels of `size` inches plus `extra` (titles, legend), bounded."""
    rows, cols = grid_shape(n, per_row)
    w, h = bounded(size[0] * cols + extra[0], size[1] * rows + extra[1])
    return rows, cols, max(w, 5.0 if w >= 5.0 else w), h
