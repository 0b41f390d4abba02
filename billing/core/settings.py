"""One settings object, read from the environment, each setting defined once.

A setting is one field of `Settings`: its type, its default and, through `setting(...)`,
its line in the README's table and the values it may take. From that one definition come
the reading of the environment (`Settings.from_env`, which checks every value at start-up
and names each variable it cannot use in one OperatorError), the README's table
(`readme_table`, which a test compares with README.md) and a repr without secrets.

Defaults suit a laptop: no variable is needed to run the dashboard on the embedded
PostgreSQL and a local mail catcher. Secrets have no default; the parts that need one
(the payments webhook) refuse to start without it. A Settings never shows a secret when
printed or logged: fields named *_password, *_secret or *_token show '***', and *_url
fields show their URL with the password replaced by '***'.

`python -m billing.core.settings` prints the README's table.
"""

# ruff: noqa: RUF009  (setting(...) returns a dataclasses.field, as field(...) would)

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, get_type_hints

from billing.core.errors import OperatorError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HIDDEN = "***"
SECRET_SUFFIXES = ("_password", "_secret", "_token")
URL_SUFFIX = "_url"
# user:password@ in a URL: everything from the first ':' after the user to the last '@'.
_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:).*@(?=[^@]*$)", re.DOTALL)
# password=... in a query string or a libpq "key=value" string (sslpassword too).
_PASSWORD_PARAMETER = re.compile(
    r"(?P<key>(?:^|[?&;\s])(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^&;\s#]*)",
    re.IGNORECASE,
)
LANGUAGES = ("pt_BR", "en")


def _first_known_language(text: str) -> str:
    """LANGUAGE as GNU gettext also reads it, a list of preferences such as "en_US:en" or
    "pt_BR.UTF-8": the first one this product speaks; the text itself when none is."""
    for preference in text.split(":"):
        code = preference.split(".")[0].split("@")[0].strip().lower().replace("-", "_")
        if code == "pt" or code.startswith("pt_"):
            return "pt_BR"
        if code == "en" or code.startswith("en_"):
            return "en"
    return text


@dataclass(frozen=True)
class Entry:
    """What one setting's definition adds to its field: the README's line and its choices."""

    meaning: str
    variable: str  # the environment variable; "" when it is the field's name in capitals
    shown_default: str  # the README's Default column; "" when it is the default itself
    choices: tuple[str, ...]  # the only values allowed (any case); () for any value
    # Reads the variable's text before the choices are checked (a gettext list for LANGUAGE).
    read_as: Callable[[str], str] | None = None


def setting(
    default: Any,
    meaning: str,
    *,
    variable: str = "",
    shown_default: str = "",
    choices: tuple[str, ...] = (),
    read_as: Callable[[str], str] | None = None,
) -> Any:
    """A field of Settings: its default, its meaning for the README, the values it takes."""
    entry = Entry(meaning, variable, shown_default, choices, read_as)
    return field(default=default, metadata={"entry": entry})


@dataclass(frozen=True)
class Settings:
    """Everything the product reads from the environment, in one place."""

    # Database and files
    database_url: str = setting(
        "",
        "`postgresql://user:password@host:port/db`, or a socket with `?host=/dir`",
        shown_default="*(unset: embedded server)*",
    )
    migration_database_url: str = setting(
        "",
        "the schema owner's URL, for migrations; `DATABASE_URL` is then the application's "
        "role, which owns nothing (see Docker)",
        shown_default="*(unset: `DATABASE_URL`)*",
    )
    database_read_url: str = setting(
        "",
        "a read replica of `DATABASE_URL`'s database: the dashboard's pages read from it, "
        "every write still goes to `DATABASE_URL` (see [A read replica](#a-read-replica))",
        shown_default="*(unset: `DATABASE_URL`)*",
    )
    data_dir: Path = setting(
        PROJECT_ROOT / ".data",
        "where the embedded PostgreSQL keeps its files",
        variable="BILLING_DATA_DIR",
        shown_default="`.data`",
    )
    max_file_mb: int = setting(
        250, "largest debtor file accepted by the dashboard's upload (held in memory)"
    )
    max_import_file_mb: int = setting(
        4096, "largest debtor file accepted by the CLI and the API (read in 16 MB pieces)"
    )
    max_debt_amount: Decimal = setting(Decimal("99999999.99"), "largest amount accepted in a row")

    # Time limits on the database (0 turns one off)
    database_connect_timeout_seconds: int = setting(
        10,
        "every process gives up dialling the database after this long (and tries again: "
        "see [Bad days](#bad-days))",
    )
    dashboard_statement_seconds: int = setting(
        30,
        "a dashboard page's query is stopped past this long and the page says so "
        "(0: no limit); imports, exports, the worker and the API have none",
    )
    database_lock_timeout_seconds: int = setting(
        60,
        "the dashboard's reads and actions stop waiting for a lock after this long "
        "(0: no limit); imports queue behind each other without it",
    )
    database_idle_in_transaction_seconds: int = setting(
        600,
        "the server ends a session left idle inside a transaction this long (a hung process "
        "never holds its locks for ever; 0: no limit)",
    )

    # Beneficiary of the boletos (the fund's bank account)
    boleto_layout: str = setting(
        "caixa_sigcb", "free-field layout: `caixa_sigcb` or `bb_convenio7`"
    )
    bank_code: str = setting("104", "beneficiary bank (104 Caixa, 001 Banco do Brasil)")
    beneficiary_name: str = setting(
        "Fundo de Crédito Exemplo FIDC",
        "beneficiary printed on the boleto",
        shown_default="example fund",
    )
    beneficiary_document: str = setting(
        "11222333000181", "beneficiary CNPJ", shown_default="example CNPJ"
    )
    beneficiary_agency: str = setting("1234", "agency")
    beneficiary_account: str = setting("005507", "account")
    beneficiary_account_digit: str = setting("7", "account check digit")
    beneficiary_wallet: str = setting("14", "carteira")
    beneficiary_code: str = setting("005507", "Caixa código do beneficiário (6) or BB convênio (7)")
    beneficiary_address: str = setting("", "beneficiary address on the slip")
    beneficiary_wallet_variation: str = setting(
        "019", "Banco do Brasil's variação da carteira, in the remessa's agreement code"
    )

    # What a remessa asks the bank to charge after the due date (billing.cnab)
    bank_fine_percent: Decimal = setting(
        Decimal("2.00"),
        "multa the remessa asks the bank to charge after the due date, % of the amount (0: none)",
    )
    bank_interest_monthly_percent: Decimal = setting(
        Decimal("1.00"),
        "juros de mora per month after the due date, sent as a value per day (0: none)",
    )
    bank_discount_percent: Decimal = setting(
        Decimal("0"), "desconto for paying early, % of the amount (0: none)"
    )
    bank_discount_days: int = setting(
        0, "the discount holds until this many days before the due date"
    )

    # Pix (hybrid boleto): off when no key is configured
    pix_key: str = setting(
        "",
        'Pix key for the hybrid boleto\'s "copia e cola"',
        shown_default="*(empty: no Pix)*",
    )
    pix_merchant_name: str = setting(
        "", "name in the Pix code", shown_default="*(beneficiary name)*"
    )
    pix_merchant_city: str = setting("SAO PAULO", "city in the Pix code")

    # E-mail
    smtp_host: str = setting("localhost", "mail server")
    smtp_port: int = setting(1025, "mail server port (a local mail catcher by default)")
    smtp_user: str = setting("", "login, when the server needs one")
    smtp_password: str = setting("", "password (secret: from the environment only)")
    smtp_security: str = setting(
        "none", "`none`, `starttls` or `ssl`", choices=("none", "starttls", "ssl")
    )
    smtp_timeout_seconds: int = setting(30, "connection timeout")
    mail_from: str = setting("Cobrança <cobranca@example.com>", "sender")
    mail_attach_pdf: bool = setting(False, "attach the boleto PDF to e-mails")
    mail_rate_per_second: int = setting(0, "sending limit, 0 for none")
    mail_max_attempts: int = setting(5, "tries for a transient SMTP failure")
    mail_server_retry_seconds: int = setting(
        30,
        "first wait when the mail server cannot be reached at all; doubles up to 15 "
        "minutes, and counts no attempt",
    )

    # Notices and the daily cycle
    notice_on_issue: bool = setting(True, "e-mail when the boleto is issued")
    notice_reminder_days: int = setting(3, "reminder this many days before the due date (0: off)")
    notice_on_due_date: bool = setting(True, "e-mail on the due date")
    notice_overdue_days: int = setting(
        1, "overdue notice this many days after the due date (0: off)"
    )
    notice_requires_registration: bool = setting(
        False,
        "e-mail a debtor only once the bank has registered the boleto (a retorno confirmed it)",
    )
    daily_cycle_at: str = setting("08:00", "when the worker runs the daily cycle")
    timezone: str = setting(
        "America/Sao_Paulo", "time zone of the schedule and of the bank's times"
    )

    # Payments API
    webhook_secret: str = setting(
        "",
        "HMAC secret of the bank's payment webhook: at least 32 bytes, not a placeholder "
        "(`openssl rand -hex 32`)",
        shown_default="*(required by the API)*",
    )
    api_token: str = setting(
        "",
        "bearer token of systems that `POST /debtors/upload`: at least 32 bytes when set",
        shown_default="*(required for file uploads by API)*",
    )
    api_port: int = setting(8000, "port of the payments API")

    # Sign-in and roles
    auth_mode: str = setting(
        "accounts",
        "how operators sign in: `accounts` (built-in, passwords in PostgreSQL) or `oidc` "
        "(the company's identity provider, see Security)",
        choices=("accounts", "oidc"),
    )
    session_idle_minutes: int = setting(
        480, "a dashboard session ends after this many minutes without use"
    )
    oidc_admins: str = setting(
        "", "with `oidc`: e-mails or `@domain`s (comma-separated) signed in as admin"
    )
    oidc_operators: str = setting("", "with `oidc`: e-mails or `@domain`s signed in as operator")
    oidc_viewers: str = setting("", "with `oidc`: e-mails or `@domain`s signed in as viewer")

    # Language
    language: str = setting(
        "pt_BR",
        "the dashboard's and the command line's default language: `pt_BR` or `en` "
        "(an operator may choose their own)",
        choices=LANGUAGES,
        read_as=_first_known_language,
    )

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    @property
    def max_import_file_bytes(self) -> int:
        return self.max_import_file_mb * 1024 * 1024

    def __repr__(self) -> str:
        """Every setting, secrets hidden: safe for logs, tracebacks and test reports."""
        shown = ", ".join(
            f"{field.name}={shown_setting(field.name, getattr(self, field.name))!r}"
            for field in fields(self)
        )
        return f"{type(self).__name__}({shown})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of `environ` (the process's environment by default), every value
        checked: an unset or blank variable takes the default; any that cannot be used
        are named, each with what it must be, in one OperatorError."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for definition in fields(cls):
            name = variable_of(definition)
            text = environ.get(name, "").strip()
            if not text:
                continue
            try:
                values[definition.name] = _parsed(definition, text)
            except ValueError as exc:
                problems.append(f"{name} {exc}, not {text!r}.")
        if problems:
            raise OperatorError(" ".join(problems), title="Settings not usable")
        return cls(**values)


def variable_of(definition: Field[Any]) -> str:
    """The environment variable behind a field of Settings."""
    return _entry(definition).variable or definition.name.upper()


def _entry(definition: Field[Any]) -> Entry:
    entry: Entry = definition.metadata["entry"]
    return entry


def _number(text: str) -> Decimal:
    value = Decimal(text.replace(",", "."))  # "2,00" as written in Brazil, or "2.00"
    if not value.is_finite():
        raise ArithmeticError(text)
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _yes_or_no(text: str) -> bool:
    if text.lower() not in (*_TRUE, *_FALSE):
        raise ValueError(text)
    return text.lower() in _TRUE


# How a variable's text becomes a value of each type, and what to say when it cannot.
_READERS: dict[object, tuple[Callable[[str], object], str]] = {
    str: (str, ""),
    Path: (Path, ""),
    int: (int, "must be a whole number"),
    Decimal: (_number, "must be a number such as 2.00"),
    bool: (_yes_or_no, "must be true or false (also 1/0, yes/no, on/off)"),
}
_TYPES = get_type_hints(Settings)


def _parsed(definition: Field[Any], text: str) -> object:
    """The value of a variable's text; ValueError saying what it must be instead."""
    entry = _entry(definition)
    if entry.read_as:
        text = entry.read_as(text)
    choices = entry.choices
    if choices:
        by_case = {choice.lower(): choice for choice in choices}
        if text.lower() not in by_case:
            raise ValueError(f"must be {_one_of(choices)}")
        return by_case[text.lower()]
    read, expected = _READERS[_TYPES[definition.name]]
    try:
        return read(text)
    except (ValueError, ArithmeticError) as exc:
        raise ValueError(expected) from exc


def _one_of(choices: tuple[str, ...]) -> str:
    return f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]


def shown_setting(name: str, value: object) -> object:
    """A setting's value as it may be shown: a secret as '***', a URL without its password."""
    if not isinstance(value, str) or not value:
        return value
    if name.endswith(SECRET_SUFFIXES):
        return HIDDEN
    if name.endswith(URL_SUFFIX):
        return url_without_password(value)
    return value


def url_without_password(url: str) -> str:
    """`url` (postgresql://user:password@host/db?password=..., or key=value text) with
    every password replaced by '***'; when unsure where it ends, more is hidden."""
    hidden = _URL_PASSWORD.sub(rf"\g<head>{HIDDEN}@", url)
    return _PASSWORD_PARAMETER.sub(rf"\g<key>{HIDDEN}", hidden)


# The environment variable behind each setting, in the order of the README's table.
ENVIRONMENT_VARIABLES = [variable_of(definition) for definition in fields(Settings)]


def readme_table() -> str:
    """The README's table of environment variables, one row per setting."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    rows += [
        f"| `{variable_of(definition)}` | {_shown_default(definition)} "
        f"| {_entry(definition).meaning} |"
        for definition in fields(Settings)
    ]
    return "\n".join(rows) + "\n"


def _shown_default(definition: Field[Any]) -> str:
    default = definition.default
    if _entry(definition).shown_default:
        return _entry(definition).shown_default
    if default == "":
        return "*(empty)*"
    if isinstance(default, bool):
        return "`true`" if default else "`false`"
    return f"`{default}`"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once; tests call `get_settings.cache_clear()`."""
    return Settings.from_env()


if __name__ == "__main__":
    print(readme_table(), end="")
