"""Errors raised by the data layer.

All are ``ValueError`` subclasses so callers that only know the standard library can catch them.
Messages always name the file or folder at fault.
"""

from __future__ import annotations


class DataError(ValueError):
    """A dataset on disk is missing, incomplete or inconsistent."""


class ImageReadError(DataError):
    """One image could not be read safely (empty, truncated, not an image, too large, ...)."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than the reader allows (the decompression-bomb guard), found
    from its header before any pixel is decoded. ``name`` is the file as the message calls it,
    ``limit`` the pixel limit in force."""

    def __init__(self, message: str, name: str, width: int, height: int, limit: int) -> None:
        super().__init__(message)
        self.name, self.width, self.height, self.limit = name, width, height, limit

    def __reduce__(self):  # pickle with every field (``args`` holds the message only)
        return type(self), (str(self), self.name, self.width, self.height, self.limit)
