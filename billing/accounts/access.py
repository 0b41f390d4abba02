"""Who may do what: roles, the acting identity, and the check every action makes.

Every domain function that changes money, personal data or accounts takes the acting
`Actor` and calls `require` first, so the dashboard, the CLI and the API obey the same
rule; a hidden button is a convenience, never the check.

- viewer: reads the Overview, Charges, Debtors, Imports and Notifications, with every
  governmentId masked; no action, no export of personal data.
- operator: a viewer's reading, plus importing, recording payments by hand, canceling
  and reopening, resending, retrying, sending now, exporting and correcting a debtor's
  e-mail; may reveal one whole governmentId at a time.
- admin: everything, plus the accounts and the audit trail.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from enum import StrEnum

from billing.core.errors import OperatorError
from billing.core.i18n import N_, _


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


ROLES = tuple(Role)


class Permission(StrEnum):
    READ = "read"
    IMPORT = "import"
    CHANGE_CHARGES = "change charges"  # record a payment by hand, cancel, reopen
    CORRECT_DEBTORS = "correct a debtor's e-mail"  # personal data: audited
    SEND_NOTICES = "send notices"  # resend, retry, send now
    EXPORT = "export"
    REVEAL_DOCUMENT = "reveal a governmentId"
    MANAGE_ACCOUNTS = "manage accounts"
    READ_AUDIT = "read the audit trail"
    BANK_FILES = "exchange files with the bank"  # remessas and retornos (CNAB 240)


# What each role and permission is called in a sentence, marked for the catalogs: shown
# with _(...) (billing.core.i18n); the values above are stored and stay as they are.
ROLE_NAMES = {Role.VIEWER: N_("viewer"), Role.OPERATOR: N_("operator"), Role.ADMIN: N_("admin")}
PERMISSION_PHRASES = {
    Permission.READ: N_("read the dashboard"),
    Permission.IMPORT: N_("import files"),
    Permission.CHANGE_CHARGES: N_("change charges"),
    Permission.CORRECT_DEBTORS: N_("correct a debtor's e-mail"),
    Permission.SEND_NOTICES: N_("send notices"),
    Permission.EXPORT: N_("export data"),
    Permission.REVEAL_DOCUMENT: N_("reveal a governmentId"),
    Permission.MANAGE_ACCOUNTS: N_("manage accounts"),
    Permission.READ_AUDIT: N_("read the audit trail"),
    Permission.BANK_FILES: N_("exchange files with the bank"),
}


_OPERATOR = {
    Permission.READ,
    Permission.IMPORT,
    Permission.CHANGE_CHARGES,
    Permission.SEND_NOTICES,
    Permission.EXPORT,
    Permission.REVEAL_DOCUMENT,
    Permission.BANK_FILES,
    Permission.CORRECT_DEBTORS,
}
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset(_OPERATOR),
    Role.ADMIN: frozenset(Permission),
}


class Forbidden(OperatorError):
    """The acting identity's role does not allow the action."""

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message, title=title if title is not None else _("Not allowed"))


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in account's e-mail, `cli:<user>`, `api`, `bank-webhook`."""

    name: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]


def require(actor: Actor, permission: Permission) -> None:
    """Refuse, with a sentence, an action the actor's role does not allow."""
    if not isinstance(actor, Actor):
        raise TypeError(f"an Actor is required, not {actor!r}")
    if not actor.can(permission):
        raise Forbidden(
            _(
                "{name} signed in as {role} may not {action}; "
                "ask an administrator for the operator role."
            ).format(
                name=actor.name,
                role=_(ROLE_NAMES[actor.role]),
                action=_(PERMISSION_PHRASES[permission]),
            )
        )


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError as exc:
        choices = ", ".join(role.value for role in ROLES)
        raise OperatorError(
            _("The role must be one of {choices}, not {value}.").format(
                choices=choices, value=repr(value)
            )
        ) from exc


def cli_actor() -> Actor:
    """The command line acts as the operating-system user who runs it, with every right:
    whoever can run it on the server holds the database's credentials anyway."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or passwd
        user = "unknown"
    return Actor(f"cli:{user}", Role.ADMIN)


# The API's two callers: systems that upload files with API_TOKEN, and the bank.
API_ACTOR = Actor("api", Role.OPERATOR)
WEBHOOK_ACTOR = Actor("bank-webhook", Role.OPERATOR)
