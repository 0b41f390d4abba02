"""The sentences the domain raises and returns come out in the language of whoever is
served: the language set when the error is made, Portuguese or English."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from billing.accounts.access import (
    PERMISSION_PHRASES,
    ROLE_NAMES,
    Actor,
    Permission,
    Role,
    parse_role,
    require,
)
from billing.accounts.users import check_password, normalise_email
from billing.charges.browsing import find_charge_id
from billing.core.errors import FileRefused, OperatorError
from billing.core.filters import ChargeFilter
from billing.core.i18n import _, language_used
from billing.entrypoints.worker import cron_for
from billing.notices.planning import sender_domain
from billing.operations.backup import require_admin

VIEWER = Actor("ana@fundo.com.br", Role.VIEWER)


def refusal(raise_it: Callable[[], object], language: str) -> OperatorError:
    """The OperatorError `raise_it` raises while `language` is served."""
    with language_used(language), pytest.raises(OperatorError) as raised:
        raise_it()
    return raised.value


@pytest.mark.parametrize(
    ("raise_it", "language", "title", "message"),
    [
        (
            lambda: require(VIEWER, Permission.MANAGE_ACCOUNTS),
            "pt_BR",
            "Não permitido",
            "ana@fundo.com.br, conectado como leitor, não pode gerenciar contas; "
            "peça a um administrador o perfil de operador.",
        ),
        (
            lambda: require(VIEWER, Permission.MANAGE_ACCOUNTS),
            "en",
            "Not allowed",
            "ana@fundo.com.br signed in as viewer may not manage accounts; "
            "ask an administrator for the operator role.",
        ),
        (
            lambda: normalise_email("ana.fundo"),
            "pt_BR",
            "E-mail inválido",
            "'ana.fundo' não é um endereço de e-mail.",
        ),
        (
            lambda: normalise_email("ana.fundo"),
            "en",
            "Invalid e-mail",
            "'ana.fundo' is not an e-mail address.",
        ),
        (
            lambda: check_password("curta"),
            "pt_BR",
            "Senha curta demais",
            "A senha precisa ter pelo menos 12 caracteres.",
        ),
        (
            lambda: check_password("short"),
            "en",
            "Password too short",
            "The password needs at least 12 characters.",
        ),
        (
            lambda: require_admin(
                Actor("op@fundo.com.br", Role.OPERATOR), _("restore the database")
            ),
            "pt_BR",
            "Não permitido",
            "op@fundo.com.br, conectado como operador, não pode restaurar o banco de dados.",
        ),
        (
            lambda: require_admin(
                Actor("op@fundo.com.br", Role.OPERATOR), _("restore the database")
            ),
            "en",
            "Not allowed",
            "op@fundo.com.br signed in as operator may not restore the database.",
        ),
        (
            lambda: cron_for("8h"),
            "pt_BR",
            "Não é possível continuar",
            "DAILY_CYCLE_AT deve ser um horário no formato HH:MM, como 08:00, não '8h'.",
        ),
        (
            lambda: cron_for("8h"),
            "en",
            "Cannot continue",
            "DAILY_CYCLE_AT must be a time of day as HH:MM, such as 08:00, not '8h'.",
        ),
    ],
    ids=[
        f"{what}-{language}"
        for what in ("forbidden", "e-mail", "password", "backup", "worker")
        for language in ("pt_BR", "en")
    ],
)
def test_an_error_speaks_the_language_served_when_it_is_raised(
    raise_it: Callable[[], object], language: str, title: str, message: str
) -> None:
    error = refusal(raise_it, language)
    assert error.message == message
    with language_used(language):  # a default title is translated where it is shown
        assert _(error.title) == title


def test_a_default_title_is_translated_where_shown_and_a_given_one_is_kept() -> None:
    with language_used("pt_BR"):
        assert _(OperatorError("x").title) == "Não é possível continuar"
        assert _(FileRefused("x").title) == "Arquivo recusado"
        given = OperatorError("x", title=_("Not found"))
        assert (given.title, _(given.title)) == ("Não encontrado", "Não encontrado")
    with language_used("en"):
        assert _(OperatorError("x").title) == "Cannot continue"
        assert _(FileRefused("x").title) == "File refused"


def test_each_request_gets_its_own_language() -> None:
    """The language is the one served when the error is made, not the one before."""
    portuguese = refusal(lambda: sender_domain("cobranca"), "pt_BR")
    english = refusal(lambda: sender_domain("cobranca"), "en")
    example = "'Cobrança <cobranca@example.com>'"
    assert portuguese.message == (
        f"MAIL_FROM deve conter um endereço de e-mail como {example}, não 'cobranca'."
    )
    assert english.message == (
        f"MAIL_FROM must hold an e-mail address such as {example}, not 'cobranca'."
    )


def test_a_refused_role_names_the_choices_as_they_are_typed() -> None:
    error = refusal(lambda: parse_role("chefe"), "pt_BR")
    assert error.message == "O perfil deve ser um destes: viewer, operator, admin; não 'chefe'."


def test_every_permission_and_role_has_words_for_a_sentence() -> None:
    assert set(PERMISSION_PHRASES) == set(Permission)
    assert set(ROLE_NAMES) == set(Role)


@pytest.mark.parametrize(
    ("language", "notes"),
    [
        (
            "pt_BR",
            [
                "status='perdida' do link foi ignorado: não é uma situação.",
                "due_from='ontem' do link foi ignorado: "
                "uma data se escreve DD/MM/AAAA ou AAAA-MM-DD.",
                "As datas de vencimento vieram invertidas; elas foram trocadas.",
            ],
        ),
        (
            "en",
            [
                "Ignored status='perdida' from the link: not a status.",
                "Ignored due_from='ontem' from the link: "
                "a date is written DD/MM/YYYY or YYYY-MM-DD.",
                "The due dates were given the wrong way round; they were swapped.",
            ],
        ),
    ],
)
def test_the_notes_on_a_link_are_in_the_language_served(language: str, notes: list[str]) -> None:
    with language_used(language):
        ignored = ChargeFilter.from_query_params({"due_from": "ontem", "status": "perdida"})[1]
        swapped = ChargeFilter.from_query_params(
            {"due_from": "31/12/2026", "due_to": "01/01/2026"}
        )[1]
    assert ignored + swapped == notes


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("pt_BR", "Nenhuma cobrança tem o debtId ou o número 'nada-123'."),
        ("en", "No charge has debtId or number 'nada-123'."),
    ],
)
def test_a_charge_not_found_is_said_in_the_language_served(
    db: Engine, language: str, message: str
) -> None:
    error = refusal(lambda: find_charge_id(db, "nada-123"), language)
    assert error.message == message
    assert error.title == ("Cobrança não encontrada" if language == "pt_BR" else "Charge not found")
