"""Errors raised by the data layer.

Both are ``ValueError`` subclasses so callers that only know the standard library can catch them.
Messages always name the file or folder at fault.
"""

from __future__ import annotations


class DataError(ValueError):
    """A dataset on disk is missing, incomplete or inconsistent."""


class ImageReadError(DataError):
    """One image could not be read safely (empty, truncated, not an image, too large, ...)."""
