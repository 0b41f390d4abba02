"""Errors an operator can act on.

Raised by the domain (billing/) and caught at the edge (page, CLI, API), where
``message`` is shown as a sentence under ``title``. Anything else that escapes is
a bug and keeps its traceback for the logs.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Something the operator can fix; shown as a sentence, never a traceback."""

    def __init__(self, message: str, *, title: str = "Cannot continue") -> None:
        super().__init__(message)
        self.message = message
        self.title = title


class FileRefused(OperatorError):
    """An uploaded file that is not usable as a whole (empty, binary, not a debtor CSV...)."""

    def __init__(self, message: str, *, title: str = "File refused") -> None:
        super().__init__(message, title=title)
