"""One settings object, read from the environment.

Defaults suit a laptop: no variable is needed to run the dashboard on the embedded
PostgreSQL and a local mail catcher. Secrets have no default; the parts that need one
(the payments webhook) refuse to start without it. Every variable is documented in the
README's table, and a test checks that none is missing there. A Settings never shows
a secret when printed or logged: fields named *_password, *_secret or *_token show '***',
and *_url fields show their URL with the password replaced by '***'.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

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


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise OperatorError(f"{name} must be a whole number, not {value!r}.") from exc


def _env_decimal(name: str, default: Decimal) -> Decimal:
    value = _env(name).replace(",", ".")
    try:
        return Decimal(value) if value else default
    except ArithmeticError as exc:
        raise OperatorError(f"{name} must be a number such as 2.00, not {value!r}.") from exc


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name).lower()
    if not value:
        return default
    return value in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything the product reads from the environment, in one place."""

    # Database and files
    database_url: str = ""
    migration_database_url: str = ""  # the schema owner; unset: DATABASE_URL
    database_read_url: str = ""  # a read replica for the dashboard's reads; unset: DATABASE_URL
    data_dir: Path = PROJECT_ROOT / ".data"
    max_file_mb: int = 250  # the dashboard's upload, held in memory by the browser's session
    max_import_file_mb: int = 4096  # the CLI's and the API's, read a piece at a time
    max_debt_amount: Decimal = Decimal("99999999.99")

    # Time limits on the database (0 turns one off). A dashboard page gives up on a query
    # past DASHBOARD_STATEMENT_SECONDS with a sentence, instead of holding a page and a
    # connection for ever; imports, the worker and the API have no statement limit (an
    # import of a million rows runs for minutes).
    database_connect_timeout_seconds: int = 10
    dashboard_statement_seconds: int = 30
    database_lock_timeout_seconds: int = 60
    database_idle_in_transaction_seconds: int = 600

    # Beneficiary of the boletos (the fund's bank account)
    boleto_layout: str = "caixa_sigcb"
    bank_code: str = "104"
    beneficiary_name: str = "Fundo de Crédito Exemplo FIDC"
    beneficiary_document: str = "11222333000181"
    beneficiary_agency: str = "1234"
    beneficiary_account: str = "005507"
    beneficiary_account_digit: str = "7"
    beneficiary_wallet: str = "14"
    beneficiary_code: str = "005507"
    beneficiary_address: str = ""
    beneficiary_wallet_variation: str = "019"  # Banco do Brasil's variação da carteira

    # What a remessa asks the bank to charge after the due date, and the discount before
    # it (billing.cnab): percentages of the amount; 0 leaves one out.
    bank_fine_percent: Decimal = Decimal("2.00")  # multa, once (the most the CDC allows)
    bank_interest_monthly_percent: Decimal = Decimal("1.00")  # juros de mora, per month
    bank_discount_percent: Decimal = Decimal("0")  # desconto for paying early
    bank_discount_days: int = 0  # the discount holds until this many days before the due date

    # Pix (hybrid boleto): off when no key is configured
    pix_key: str = ""
    pix_merchant_name: str = ""
    pix_merchant_city: str = "SAO PAULO"

    # E-mail
    smtp_host: str = "localhost"
    smtp_port: int = 1025
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_security: str = "none"  # none, starttls or ssl
    smtp_timeout_seconds: int = 30
    mail_from: str = "Cobrança <cobranca@example.com>"
    mail_attach_pdf: bool = False
    mail_rate_per_second: int = 0  # 0: no limit
    mail_max_attempts: int = 5
    # First wait when the mail server cannot be reached at all; doubles, up to 15 minutes.
    mail_server_retry_seconds: int = 30

    # Notices and the daily cycle
    notice_on_issue: bool = True
    notice_reminder_days: int = 3  # 0 turns the reminder off
    notice_on_due_date: bool = True
    notice_overdue_days: int = 1  # days after the due date; 0 turns it off
    # Only e-mail boletos the bank has registered (a retorno confirmed them): off, so the
    # product works without exchanging files with a bank.
    notice_requires_registration: bool = False
    daily_cycle_at: str = "08:00"
    timezone: str = "America/Sao_Paulo"

    # Payments API
    webhook_secret: str = ""
    api_token: str = ""  # bearer token for POST /debtors/upload; unset: uploads off
    api_port: int = 8000

    # Sign-in and roles
    auth_mode: str = "accounts"  # accounts (built-in, in PostgreSQL) or oidc
    session_idle_minutes: int = 480
    oidc_admins: str = ""  # e-mails or @domains, comma-separated
    oidc_operators: str = ""
    oidc_viewers: str = ""

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
    def from_env(cls) -> Settings:
        d = cls()
        return cls(
            database_url=_env("DATABASE_URL"),
            migration_database_url=_env("MIGRATION_DATABASE_URL"),
            database_read_url=_env("DATABASE_READ_URL"),
            data_dir=Path(_env("BILLING_DATA_DIR", str(d.data_dir))),
            max_file_mb=_env_int("MAX_FILE_MB", d.max_file_mb),
            max_import_file_mb=_env_int("MAX_IMPORT_FILE_MB", d.max_import_file_mb),
            max_debt_amount=Decimal(_env("MAX_DEBT_AMOUNT", str(d.max_debt_amount))),
            database_connect_timeout_seconds=_env_int(
                "DATABASE_CONNECT_TIMEOUT_SECONDS", d.database_connect_timeout_seconds
            ),
            dashboard_statement_seconds=_env_int(
                "DASHBOARD_STATEMENT_SECONDS", d.dashboard_statement_seconds
            ),
            database_lock_timeout_seconds=_env_int(
                "DATABASE_LOCK_TIMEOUT_SECONDS", d.database_lock_timeout_seconds
            ),
            database_idle_in_transaction_seconds=_env_int(
                "DATABASE_IDLE_IN_TRANSACTION_SECONDS", d.database_idle_in_transaction_seconds
            ),
            boleto_layout=_env("BOLETO_LAYOUT", d.boleto_layout),
            bank_code=_env("BANK_CODE", d.bank_code),
            beneficiary_name=_env("BENEFICIARY_NAME", d.beneficiary_name),
            beneficiary_document=_env("BENEFICIARY_DOCUMENT", d.beneficiary_document),
            beneficiary_agency=_env("BENEFICIARY_AGENCY", d.beneficiary_agency),
            beneficiary_account=_env("BENEFICIARY_ACCOUNT", d.beneficiary_account),
            beneficiary_account_digit=_env(
                "BENEFICIARY_ACCOUNT_DIGIT", d.beneficiary_account_digit
            ),
            beneficiary_wallet=_env("BENEFICIARY_WALLET", d.beneficiary_wallet),
            beneficiary_code=_env("BENEFICIARY_CODE", d.beneficiary_code),
            beneficiary_address=_env("BENEFICIARY_ADDRESS", d.beneficiary_address),
            beneficiary_wallet_variation=_env(
                "BENEFICIARY_WALLET_VARIATION", d.beneficiary_wallet_variation
            ),
            bank_fine_percent=_env_decimal("BANK_FINE_PERCENT", d.bank_fine_percent),
            bank_interest_monthly_percent=_env_decimal(
                "BANK_INTEREST_MONTHLY_PERCENT", d.bank_interest_monthly_percent
            ),
            bank_discount_percent=_env_decimal("BANK_DISCOUNT_PERCENT", d.bank_discount_percent),
            bank_discount_days=_env_int("BANK_DISCOUNT_DAYS", d.bank_discount_days),
            pix_key=_env("PIX_KEY"),
            pix_merchant_name=_env("PIX_MERCHANT_NAME"),
            pix_merchant_city=_env("PIX_MERCHANT_CITY", d.pix_merchant_city),
            smtp_host=_env("SMTP_HOST", d.smtp_host),
            smtp_port=_env_int("SMTP_PORT", d.smtp_port),
            smtp_user=_env("SMTP_USER"),
            smtp_password=_env("SMTP_PASSWORD"),
            smtp_security=_env("SMTP_SECURITY", d.smtp_security).lower(),
            smtp_timeout_seconds=_env_int("SMTP_TIMEOUT_SECONDS", d.smtp_timeout_seconds),
            mail_from=_env("MAIL_FROM", d.mail_from),
            mail_attach_pdf=_env_bool("MAIL_ATTACH_PDF", d.mail_attach_pdf),
            mail_rate_per_second=_env_int("MAIL_RATE_PER_SECOND", d.mail_rate_per_second),
            mail_max_attempts=_env_int("MAIL_MAX_ATTEMPTS", d.mail_max_attempts),
            mail_server_retry_seconds=_env_int(
                "MAIL_SERVER_RETRY_SECONDS", d.mail_server_retry_seconds
            ),
            notice_on_issue=_env_bool("NOTICE_ON_ISSUE", d.notice_on_issue),
            notice_reminder_days=_env_int("NOTICE_REMINDER_DAYS", d.notice_reminder_days),
            notice_on_due_date=_env_bool("NOTICE_ON_DUE_DATE", d.notice_on_due_date),
            notice_overdue_days=_env_int("NOTICE_OVERDUE_DAYS", d.notice_overdue_days),
            notice_requires_registration=_env_bool(
                "NOTICE_REQUIRES_REGISTRATION", d.notice_requires_registration
            ),
            daily_cycle_at=_env("DAILY_CYCLE_AT", d.daily_cycle_at),
            timezone=_env("TIMEZONE", d.timezone),
            webhook_secret=_env("WEBHOOK_SECRET"),
            api_token=_env("API_TOKEN"),
            api_port=_env_int("API_PORT", d.api_port),
            auth_mode=_env("AUTH_MODE", d.auth_mode).lower(),
            session_idle_minutes=_env_int("SESSION_IDLE_MINUTES", d.session_idle_minutes),
            oidc_admins=_env("OIDC_ADMINS"),
            oidc_operators=_env("OIDC_OPERATORS"),
            oidc_viewers=_env("OIDC_VIEWERS"),
        )


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


# The environment variable behind each setting; the README documents each of them.
ENVIRONMENT_VARIABLES = [
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "DATABASE_READ_URL",
    "BILLING_DATA_DIR",
    "MAX_FILE_MB",
    "MAX_IMPORT_FILE_MB",
    "MAX_DEBT_AMOUNT",
    "DATABASE_CONNECT_TIMEOUT_SECONDS",
    "DASHBOARD_STATEMENT_SECONDS",
    "DATABASE_LOCK_TIMEOUT_SECONDS",
    "DATABASE_IDLE_IN_TRANSACTION_SECONDS",
    "BOLETO_LAYOUT",
    "BANK_CODE",
    "BENEFICIARY_NAME",
    "BENEFICIARY_DOCUMENT",
    "BENEFICIARY_AGENCY",
    "BENEFICIARY_ACCOUNT",
    "BENEFICIARY_ACCOUNT_DIGIT",
    "BENEFICIARY_WALLET",
    "BENEFICIARY_CODE",
    "BENEFICIARY_ADDRESS",
    "BENEFICIARY_WALLET_VARIATION",
    "BANK_FINE_PERCENT",
    "BANK_INTEREST_MONTHLY_PERCENT",
    "BANK_DISCOUNT_PERCENT",
    "BANK_DISCOUNT_DAYS",
    "PIX_KEY",
    "PIX_MERCHANT_NAME",
    "PIX_MERCHANT_CITY",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "SMTP_SECURITY",
    "SMTP_TIMEOUT_SECONDS",
    "MAIL_FROM",
    "MAIL_ATTACH_PDF",
    "MAIL_RATE_PER_SECOND",
    "MAIL_MAX_ATTEMPTS",
    "MAIL_SERVER_RETRY_SECONDS",
    "NOTICE_ON_ISSUE",
    "NOTICE_REMINDER_DAYS",
    "NOTICE_ON_DUE_DATE",
    "NOTICE_OVERDUE_DAYS",
    "NOTICE_REQUIRES_REGISTRATION",
    "DAILY_CYCLE_AT",
    "TIMEZONE",
    "WEBHOOK_SECRET",
    "API_TOKEN",
    "API_PORT",
    "AUTH_MODE",
    "SESSION_IDLE_MINUTES",
    "OIDC_ADMINS",
    "OIDC_OPERATORS",
    "OIDC_VIEWERS",
]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
