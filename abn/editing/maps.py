"""Edits of an attention map: regions of map cells, the operations on them, and an undo history.

Pure NumPy. A map is a float32 h×w array in [0, 1] (the model's M(x) at its own resolution); a
region is a bool h×w array. Points are given in cell units, x along columns and y along rows,
with cell (row r, column c) centred at (x=c, y=r): the coordinates of a heatmap whose cells
are drawn at integer positions (Plotly's). A canvas in pixels converts with
``x = px / cell_width - 0.5``. Every operation returns a new array, clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

Region = np.ndarray  # bool h×w
Shape = tuple[int, int]

__all__ = [
    "OPERATIONS",
    "EditHistory",
    "Region",
    "box",
    "brush",
    "cells",
    "describe_region",
    "emphasise",
    "erase",
    "invert",
    "lasso",
    "set_value",
    "smooth",
]


# -- regions --------------------------------------------------------------------------------


def _shape(shape: Sequence[int]) -> Shape:
    h, w = (int(s) for s in shape)
    if h < 1 or w < 1:
        raise ValueError(f"a map has at least one cell; got shape {tuple(shape)}")
    return h, w


def _centres(shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """The cells' centres (x, y), each h×w."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return cols.astype(np.float64), rows.astype(np.float64)


def _points(points: Sequence[tuple[float, float]]) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(array).all():
        raise ValueError("region points must be finite numbers")
    return array


def box(shape: Sequence[int], top: int, left: int, bottom: int, right: int) -> Region:
    """The cells from (top, left) to (bottom, right), both inclusive, clipped to the map.

    Reversed corners (a box dragged upwards or leftwards) are put in order first.
    """
    h, w = _shape(shape)
    top, bottom = sorted((int(top), int(bottom)))
    left, right = sorted((int(left), int(right)))
    region = np.zeros((h, w), dtype=bool)
    region[max(top, 0) : max(bottom + 1, 0), max(left, 0) : max(right + 1, 0)] = True
    return region


def lasso(shape: Sequence[int], points: Sequence[tuple[float, float]]) -> Region:
    """The cells whose centre lies inside the polygon through ``points`` (x=col, y=row).

    Fewer than three points enclose nothing (an empty region). Even-odd rule.
    """
    h, w = _shape(shape)
    poly = _points(points)
    inside = np.zeros((h, w), dtype=bool)
    if len(poly) < 3:
        return inside
    x, y = _centres((h, w))
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
        if ay == by:
            continue  # a horizontal edge never crosses the rightward ray
        crosses = (ay > y) != (by > y)
        x_at = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (x < x_at)
    return inside


def brush(shape: Sequence[int], points: Sequence[tuple[float, float]], radius: float) -> Region:
    """The cells whose centre lies within ``radius`` cells of the stroke through ``points``
    (x=col, y=row): the segments between consecutive points, so a fast stroke has no gaps."""
    h, w = _shape(shape)
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"brush radius must be a number ≥ 0, got {radius}")
    stroke = _points(points)
    region = np.zeros((h, w), dtype=bool)
    if len(stroke) == 0:
        return region
    x, y = _centres((h, w))
    starts = stroke if len(stroke) == 1 else stroke[:-1]
    ends = stroke if len(stroke) == 1 else stroke[1:]
    for (ax, ay), (bx, by) in zip(starts, ends, strict=True):
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else np.clip(((x - ax) * dx + (y - ay) * dy) / length2, 0, 1)
        region |= (x - (ax + t * dx)) ** 2 + (y - (ay + t * dy)) ** 2 <= radius**2 + 1e-9
    return region


def cells(shape: Sequence[int], indices: Iterable[tuple[int, int]]) -> Region:
    """The cells at ``indices`` ((row, col) pairs); pairs outside the map are ignored."""
    h, w = _shape(shape)
    region = np.zeros((h, w), dtype=bool)
    for row, col in indices:
        r, c = int(row), int(col)
        if 0 <= r < h and 0 <= c < w:
            region[r, c] = True
    return region


def describe_region(region: Region | None) -> str:
    """Where a region is, in words: '12 cells (rows 2–4, columns 3–6)' or 'the whole map'."""
    if region is None or region.all():
        return "the whole map"
    n = int(region.sum())
    if n == 0:
        return "no cells"
    rows, cols = np.nonzero(region)
    return f"{n} cell{'s' if n != 1 else ''} ({_span('row', rows)}, {_span('column', cols)})"


def _span(what: str, idx: np.ndarray) -> str:
    lo, hi = int(idx.min()), int(idx.max())
    return f"{what} {lo}" if lo == hi else f"{what}s {lo}–{hi}"


# -- operations -----------------------------------------------------------------------------


def _map(m: np.ndarray) -> np.ndarray:
    array = np.array(m, dtype=np.float32)  # a copy
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"an attention map is a 2-D h×w array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("the attention map holds NaN or infinite values")
    return array


def _region(region: Region | None, shape: Shape) -> np.ndarray:
    if region is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(region)
    if mask.shape != shape:
        raise ValueError(f"the region's shape {mask.shape} does not match the map's {shape}")
    if mask.dtype != bool:
        raise ValueError(f"a region is a bool array, got {mask.dtype}")
    return mask


def _fill(m: np.ndarray, region: Region | None, value: float) -> np.ndarray:
    out = _map(m)
    out[_region(region, out.shape)] = value
    return np.clip(out, 0.0, 1.0)


def erase(m: np.ndarray, region: Region | None) -> np.ndarray:
    """``m`` with the region set to 0 (no attention there); ``None``: the whole map."""
    return _fill(m, region, 0.0)


def emphasise(m: np.ndarray, region: Region | None) -> np.ndarray:
    """``m`` with the region set to 1 (full attention there); ``None``: the whole map."""
    return _fill(m, region, 1.0)


def set_value(m: np.ndarray, region: Region | None, value: float) -> np.ndarray:
    """``m`` with the region set to ``value`` (clipped to [0, 1]); ``None``: the whole map."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"the value to set must be a finite number, got {value}")
    return _fill(m, region, min(max(value, 0.0), 1.0))


def invert(m: np.ndarray, region: Region | None = None) -> np.ndarray:
    """``m`` with 1 − M in the region (default: the whole map)."""
    out = _map(m)
    mask = _region(region, out.shape)
    out[mask] = 1.0 - np.clip(out[mask], 0.0, 1.0)
    return np.clip(out, 0.0, 1.0)


def smooth(m: np.ndarray, sigma: float = 1.0, region: Region | None = None) -> np.ndarray:
    """``m`` blurred by a Gaussian of ``sigma`` cells (edges extended), in the region only
    (default: the whole map); the blur reads the whole map, so a region blends into its
    surroundings."""
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"smoothing sigma must be a number ≥ 0, got {sigma}")
    out = _map(m)
    mask = _region(region, out.shape)
    blurred = ndimage.gaussian_filter(out, sigma=sigma, mode="nearest", truncate=3.0)
    out[mask] = blurred[mask]
    return np.clip(out, 0.0, 1.0)


# -- history --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operation:
    run: Callable[..., np.ndarray]
    options: frozenset[str]
    describe: Callable[..., str]


def _describe_set(where: str, value: float = 0.0) -> str:
    return f"Set {where} to {min(max(float(value), 0.0), 1.0):.2f}"


OPERATIONS: dict[str, _Operation] = {
    "erase": _Operation(
        lambda m, r: erase(m, r),
        frozenset(),
        lambda where: f"Erased {where} (attention set to 0)",
    ),
    "emphasise": _Operation(
        lambda m, r: emphasise(m, r),
        frozenset(),
        lambda where: f"Emphasised {where} (attention set to 1)",
    ),
    "set": _Operation(
        lambda m, r, value: set_value(m, r, value),
        frozenset({"value"}),
        _describe_set,
    ),
    "invert": _Operation(
        lambda m, r: invert(m, r),
        frozenset(),
        lambda where: f"Inverted {where} (1 − attention)",
    ),
    "smooth": _Operation(
        lambda m, r, sigma=1.0: smooth(m, sigma, r),
        frozenset({"sigma"}),
        lambda where, sigma=1.0: f"Smoothed {where} (Gaussian blur, σ = {float(sigma):g} cells)",
    ),
}
_ALIASES = {"emphasize": "emphasise", "set_value": "set"}


class EditHistory:
    """The edits made to one map, undoable step by step.

    ``EditHistory(original)``; ``apply(op, region=None, **options)`` with ``op`` one of
    ``erase``, ``emphasise``, ``set`` (``value=``), ``invert``, ``smooth`` (``sigma=``); a
    ``region`` of ``None`` is the whole map. An edit that changes nothing is not recorded.
    ``steps`` describes each recorded edit in plain language.
    """

    def __init__(self, original: np.ndarray) -> None:
        self._original = np.clip(_map(original), 0.0, 1.0)
        self._states: list[np.ndarray] = [self._original]
        self._steps: list[str] = []

    @property
    def original(self) -> np.ndarray:
        """The unedited map (a copy)."""
        return self._original.copy()

    @property
    def current(self) -> np.ndarray:
        """The map after every recorded edit (a copy)."""
        return self._states[-1].copy()

    @property
    def steps(self) -> list[str]:
        return list(self._steps)

    @property
    def can_undo(self) -> bool:
        return bool(self._steps)

    @property
    def changed(self) -> bool:
        """Whether the current map differs from the original."""
        return not np.array_equal(self._states[-1], self._original)

    def apply(self, op: str, region: Region | None = None, **options: float) -> np.ndarray:
        """Apply one edit to the current map, record it, and return the new map."""
        name = _ALIASES.get(op, op)
        if name not in OPERATIONS:
            raise ValueError(f"unknown edit {op!r}; choose one of {', '.join(OPERATIONS)}")
        operation = OPERATIONS[name]
        unknown = set(options) - operation.options
        if unknown:
            allowed = ", ".join(sorted(operation.options)) or "none"
            raise ValueError(
                f"{name} takes no option {', '.join(sorted(unknown))} (options: {allowed})"
            )
        if name == "set" and "value" not in options:
            raise ValueError("set needs value= (the attention to set, 0 to 1)")
        new = operation.run(self._states[-1], region, **options)
        if not np.array_equal(new, self._states[-1]):
            self._states.append(new)
            self._steps.append(operation.describe(describe_region(region), **options))
        return self.current

    def undo(self) -> np.ndarray:
        """Drop the last edit (nothing to undo: no change) and return the current map."""
        if self._steps:
            self._states.pop()
            self._steps.pop()
        return self.current

    def reset(self) -> np.ndarray:
        """Drop every edit and return the original map."""
        self._states = [self._original]
        self._steps = []
        return self.current

    def __len__(self) -> int:
        return len(self._steps)
