"""Progress of long explanations: a callback told a monotone fraction of the work done.

The engine opens one :func:`tracking` block per call with the expected number of *forward
passes* (one image through the model; see :meth:`abn.explain.Explainer.forward_passes`), and a
:meth:`Tracker.section` per method and chunk of images. Code deep inside a method (Score-CAM's
masked passes, RISE's mask batches, Captum's perturbed batches) reports what it ran with
:func:`step`, which finds the current tracker through a context variable (each thread has its
own), so no method's signature has to carry a callback. Without a tracker, :func:`step` does
nothing.

The callback receives ``(fraction, message)`` with ``fraction`` in [0, 1], never decreasing
and 1.0 at the end: Streamlit's ``st.progress(...).progress`` fits it as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: ``callback(fraction, message)``: fraction of the work done in [0, 1], and what runs now.
ProgressFn = Callable[[float, str], None]

_CURRENT: ContextVar[Tracker | None] = ContextVar("abn_explain_progress", default=None)


class Tracker:
    """Counts forward passes against an expected total and reports fractions.

    A section's own count is clamped to what it expected, and the section ends at its expected
    end: a wrong expectation can make the bar pause or jump, never go back.
    """

    def __init__(self, callback: ProgressFn, total: float, min_interval: float = 0.0) -> None:
        self.callback = callback
        self.total = max(float(total), 1e-9)
        self.done = 0.0
        self.min_interval = min_interval
        self._section_end = self.total
        self._message = ""
        self._last_time = 0.0
        self._reported = -1.0

    def _report(self, force: bool = False) -> None:
        fraction = min(self.done / self.total, 1.0)
        now = time.monotonic()
        if fraction <= self._reported and not force:
            return
        if not force and now - self._last_time < self.min_interval and fraction < 1.0:
            return
        self._reported = max(self._reported, fraction)
        self._last_time = now
        self.callback(self._reported, self._message)

    def advance(self, passes: float) -> None:
        """``passes`` more forward passes ran in the current section."""
        self.done = min(self.done + passes, self._section_end)
        self._report()

    @contextmanager
    def section(self, message: str, passes: float) -> Iterator[None]:
        """A part of the work expected to run ``passes`` forward passes, shown as ``message``."""
        start = self.done
        self._section_end = min(start + passes, self.total)
        self._message = message
        self._report(force=True)
        yield
        self.done = self._section_end
        self._section_end = self.total
        self._report()


@contextmanager
def tracking(callback: ProgressFn | None, total: float) -> Iterator[Tracker | None]:
    """Make a :class:`Tracker` of ``total`` forward passes current (nothing without a
    callback); it reports 1.0 when the block ends without an exception."""
    if callback is None:
        yield None
        return
    tracker = Tracker(callback, total)
    token = _CURRENT.set(tracker)
    try:
        yield tracker
    finally:
        _CURRENT.reset(token)
    tracker.done = tracker.total
    tracker._report()


def current() -> Tracker | None:
    """The tracker of the running explanation in this thread, if any."""
    return _CURRENT.get()


def step(passes: float) -> None:
    """Report ``passes`` forward passes to the current tracker (a no-op without one)."""
    tracker = _CURRENT.get()
    if tracker is not None:
        tracker.advance(passes)
