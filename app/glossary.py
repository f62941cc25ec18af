"""The metrics' plain-language help for the pages (the texts live in :mod:`abn.metrics.glossary`)."""

from __future__ import annotations

from abn.metrics.glossary import help_text, how_to_read

__all__ = ["help_text", "how_to_read"]
