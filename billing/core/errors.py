"""Errors an operator can act on.

Raised by the domain (billing/) and caught at the edge (page, CLI, API), where
``message`` is shown as a sentence under ``title``. Anything else that escapes is
a bug and keeps its traceback for the logs.
"""

from __future__ import annotations


def N_(message: str) -> str:
    """billing.core.i18n's marker for the catalogs. This module cannot import i18n (i18n
    reads the settings, which raise OperatorError), so the default titles below stay in
    English here and are translated where shown: `_(error.title)`."""
    return message


CANNOT_CONTINUE = N_("Cannot continue")
FILE_REFUSED = N_("File refused")


class OperatorError(Exception):
    """Something the operator can fix; shown as a sentence, never a traceback.

    Raise it with the message (and any title) already in the operator's language:
    `OperatorError(_("No charge {reference}.").format(reference=...), title=_("Not found"))`.
    Where it is shown, `_(error.title)` translates a default title and leaves a translated
    one as it is.
    """

    def __init__(self, message: str, *, title: str = CANNOT_CONTINUE) -> None:
        super().__init__(message)
        self.message = message
        self.title = title


class FileRefused(OperatorError):
    """An uploaded file that is not usable as a whole (empty, binary, not a debtor CSV...)."""

    def __init__(self, message: str, *, title: str = FILE_REFUSED) -> None:
        super().__init__(message, title=title)
