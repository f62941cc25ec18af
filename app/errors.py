"""The error boundary: every failure becomes a readable message in the page, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from abn.checkpoint import CheckpointError
from abn.data import DataError, ImageReadError, ImageTooLargeError
from abn.data.images import MAX_PIXELS_ENV

log = logging.getLogger("abn.app")

DATA_HINT = (
    "Extract the offline datasets with `python -m abn data prepare` (or set `ABN_DATA_ROOT` "
    "to a folder that holds them), then reload this page."
)


def report(exc: BaseException, action: str) -> None:
    """Show ``exc`` as an ``st.error`` naming what went wrong (traceback to the server log)."""
    if isinstance(exc, CheckpointError):
        st.error(f"**Checkpoint problem.** {exc}", icon=":material/memory:")
    elif isinstance(exc, ImageTooLargeError):
        st.error(
            f"**Image too large.** {_too_large(exc)}", icon=":material/photo_size_select_large:"
        )
    elif isinstance(exc, ImageReadError):
        st.error(f"**Cannot read this image.** {exc}", icon=":material/broken_image:")
    elif isinstance(exc, DataError):
        st.error(f"**Dataset not available.** {exc}\n\n{DATA_HINT}", icon=":material/dataset:")
    else:
        log.exception("%s failed", action, exc_info=exc)
        st.error(
            f"**{action} failed:** {type(exc).__name__}: {exc}\n\n"
            "This is unexpected; the full traceback is in the server log.",
            icon=":material/error:",
        )


def _too_large(exc: ImageTooLargeError) -> str:
    """Why an image is over the pixel limit, in the user's words (what to do about it too)."""
    pixels = exc.width * exc.height
    return (
        f"{exc.name} is {exc.width}×{exc.height} pixels ({pixels / 1e6:.1f} megapixels); this "
        f"dashboard reads images of up to {exc.limit / 1e6:g} megapixels. Use a smaller copy of "
        f"the image, or set the environment variable `{MAX_PIXELS_ENV}` to a larger number of "
        "pixels and restart the dashboard."
    )


@contextmanager
def error_boundary(action: str = "This step") -> Iterator[None]:
    """Run a block; an exception inside becomes an error message and the block ends there.

    Streamlit's own control flow (``st.stop``, reruns) derives from ``BaseException`` and
    passes through untouched.
    """
    try:
        yield
    except Exception as exc:
        report(exc, action)
