"""Regions, map operations and the edit history (abn.editing.maps)."""

from __future__ import annotations

import numpy as np
import pytest

from abn.editing import (
    EditHistory,
    box,
    brush,
    cells,
    describe_region,
    emphasise,
    erase,
    invert,
    lasso,
    set_value,
    smooth,
)

SHAPE = (6, 8)


def ramp() -> np.ndarray:
    return np.linspace(0.05, 0.95, SHAPE[0] * SHAPE[1], dtype=np.float32).reshape(SHAPE)


def where(region: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(region), strict=True)}


# -- regions


def test_box_is_inclusive_clipped_and_order_free():
    assert where(box(SHAPE, 1, 2, 2, 3)) == {(1, 2), (1, 3), (2, 2), (2, 3)}
    assert np.array_equal(box(SHAPE, 2, 3, 1, 2), box(SHAPE, 1, 2, 2, 3))
    clipped = box(SHAPE, -3, 6, 1, 20)
    assert where(clipped) == {(r, c) for r in (0, 1) for c in (6, 7)}
    assert not box(SHAPE, 10, 10, 12, 12).any()
    assert box(SHAPE, 0, 0, 0, 0).dtype == bool


def test_lasso_takes_cells_whose_centre_is_inside():
    # centres sit at integer (x=col, y=row): this square holds rows 1-3, columns 2-4
    square = [(1.5, 0.5), (4.5, 0.5), (4.5, 3.5), (1.5, 3.5)]
    assert where(lasso(SHAPE, square)) == {(r, c) for r in (1, 2, 3) for c in (2, 3, 4)}
    # an L (concave): the notch at rows 0-1, columns 2-3 stays out
    ell = [(-0.5, -0.5), (1.5, -0.5), (1.5, 1.5), (3.5, 1.5), (3.5, 2.5), (-0.5, 2.5)]
    expected = {(r, c) for r in (0, 1) for c in (0, 1)} | {(2, c) for c in range(4)}
    assert where(lasso(SHAPE, ell)) == expected
    assert not lasso(SHAPE, [(0, 0), (3, 3)]).any()  # two points enclose nothing


def test_brush_covers_the_stroke_without_gaps():
    dot = brush(SHAPE, [(3, 2)], radius=1)
    assert where(dot) == {(2, 3), (1, 3), (3, 3), (2, 2), (2, 4)}
    assert where(brush(SHAPE, [(3, 2)], radius=0)) == {(2, 3)}
    stroke = brush(SHAPE, [(0, 0), (7, 0)], radius=0.4)  # a fast stroke: two far points
    assert where(stroke) == {(0, c) for c in range(8)}
    with pytest.raises(ValueError, match="radius"):
        brush(SHAPE, [(1, 1)], radius=-1)


def test_cells_ignores_pairs_outside_the_map():
    assert where(cells(SHAPE, [(0, 0), (5, 7), (6, 0), (-1, 2), (2, -1)])) == {(0, 0), (5, 7)}


def test_describe_region_in_words():
    assert describe_region(None) == "the whole map"
    assert describe_region(box(SHAPE, 1, 2, 3, 2)) == "3 cells (rows 1–3, column 2)"
    assert describe_region(np.zeros(SHAPE, bool)) == "no cells"


# -- operations


@pytest.mark.parametrize(
    ("op", "value"),
    [(erase, 0.0), (emphasise, 1.0), (lambda m, r: set_value(m, r, 0.3), 0.3)],
)
def test_fill_ops_change_the_region_only(op, value):
    m = ramp()
    before = m.copy()
    region = box(SHAPE, 1, 1, 2, 4)
    out = op(m, region)
    assert np.array_equal(m, before)  # a new array; the input is untouched
    assert np.allclose(out[region], value)
    assert np.array_equal(out[~region], m[~region])
    assert out.dtype == np.float32


def test_set_value_is_clipped_and_none_is_the_whole_map():
    assert np.all(set_value(ramp(), None, 1.7) == 1.0)
    assert np.all(set_value(ramp(), None, -2) == 0.0)
    assert np.all(erase(ramp(), None) == 0.0)
    with pytest.raises(ValueError, match="finite"):
        set_value(ramp(), None, float("nan"))


def test_invert_region_and_whole():
    m, region = ramp(), box(SHAPE, 0, 0, 1, 1)
    out = invert(m, region)
    assert np.allclose(out[region], 1 - m[region])
    assert np.array_equal(out[~region], m[~region])
    assert np.allclose(invert(m), 1 - m)


def test_smooth_blurs_keeps_constants_and_respects_the_region():
    spike = np.zeros(SHAPE, np.float32)
    spike[3, 4] = 1
    out = smooth(spike, sigma=1.0)
    assert 0 < out[3, 4] < 1 and out[3, 5] > 0 and out.sum() == pytest.approx(1, abs=0.01)
    flat = np.full(SHAPE, 0.4, np.float32)
    assert np.allclose(smooth(flat, 2.0), flat)
    region = box(SHAPE, 0, 0, 2, 3)
    part = smooth(spike, 1.0, region)
    assert np.array_equal(part[~region], spike[~region]) and part[2, 3] > 0
    assert np.array_equal(smooth(spike, 0.0), spike)


def test_operations_refuse_bad_input():
    with pytest.raises(ValueError, match="shape"):
        erase(ramp(), np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="bool"):
        erase(ramp(), np.ones(SHAPE, np.float32))
    with pytest.raises(ValueError, match="2-D"):
        erase(np.zeros((1, 6, 8)), None)
    with pytest.raises(ValueError, match="sigma"):
        smooth(ramp(), -1)


# -- history


def test_history_applies_describes_undoes_and_resets():
    m = ramp()
    h = EditHistory(m)
    assert not h.can_undo and h.steps == [] and not h.changed
    region = box(SHAPE, 1, 2, 2, 3)
    after_erase = h.apply("erase", region)
    assert np.array_equal(after_erase, erase(m, region))
    h.apply("set", box(SHAPE, 0, 0, 0, 0), value=0.5)
    h.apply("smooth", sigma=1.5)
    assert h.steps == [
        "Erased 4 cells (rows 1–2, columns 2–3) (attention set to 0)",
        "Set 1 cell (row 0, column 0) to 0.50",
        "Smoothed the whole map (Gaussian blur, σ = 1.5 cells)",
    ]
    assert len(h) == 3 and h.can_undo and h.changed
    h.undo()
    h.undo()
    assert np.array_equal(h.current, after_erase) and len(h.steps) == 1
    h.apply("emphasise", region)
    h.apply("invert")
    assert h.steps[-1] == "Inverted the whole map (1 − attention)"
    assert np.array_equal(h.reset(), m) and h.steps == [] and not h.can_undo
    assert np.array_equal(h.undo(), m)  # nothing to undo: no change


def test_history_skips_no_ops_and_guards_its_state():
    h = EditHistory(ramp())
    h.apply("erase", np.zeros(SHAPE, bool))
    assert h.steps == []
    current = h.current
    current[:] = 0.0  # a copy: the history is not changed through it
    assert not h.changed
    with pytest.raises(ValueError, match="unknown edit"):
        h.apply("paint", None)
    with pytest.raises(ValueError, match="value="):
        h.apply("set", None)
    with pytest.raises(ValueError, match="takes no option"):
        h.apply("erase", None, sigma=2)
    h.apply("emphasize", box(SHAPE, 0, 0, 0, 0))  # US spelling accepted
    assert h.steps == ["Emphasised 1 cell (row 0, column 0) (attention set to 1)"]
