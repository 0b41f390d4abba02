"""What an operator corrects after the bank's answer: a refused registration sent again
(once, in the next remessa), and the debtor's address that segment Q carries."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from billing.accounts.access import Forbidden
from billing.cnab.service import (
    generate_remessa,
    import_retorno,
    remessa_history,
    save_debtor_address,
    send_registration_again,
)
from billing.core.errors import OperatorError
from billing.payments.service import cancel_charge
from tests.support.actors import OPERATOR, VIEWER
from tests.support.cnab_bank import Title, bank_retorno, bank_tables  # noqa: F401 (fixture)
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, run_import, sample_rows


def field(line: str, start: int, end: int) -> str:
    """Positions start..end, 1-based and inclusive, as the manuals number them."""
    return line[start - 1 : end]


def p_lines(path: Path) -> list[str]:
    lines = path.read_bytes().decode("ascii").split("\r\n")[:-1]
    return [line for line in lines if line[13] == "P"]


def _refused_charge(db: Engine, tmp_path: Path) -> tuple[int, int]:
    """Two charges sent; the bank refuses the first (48 CEP inválido). Its id and nosso."""
    run_import(db, debtor_csv(sample_rows(2)))
    generate_remessa(db, actor=OPERATOR, out=tmp_path / "1.rem")
    charge_id = scalar(db, "SELECT min(id) FROM charges")
    nosso = scalar(db, "SELECT nosso_numero FROM charges WHERE id = :id", id=charge_id)
    data = bank_retorno([Title("03", nosso, reasons="48")])
    import_retorno(db, actor=OPERATOR, data=data, file_name="r.ret")
    assert scalar(db, "SELECT registration_rejection FROM charges WHERE id = :id", id=charge_id)
    return charge_id, nosso


def test_a_refused_registration_goes_out_again_once_after_the_operator_asks(
    bank_db: Engine, tmp_path: Path
) -> None:
    charge_id, nosso = _refused_charge(bank_db, tmp_path)
    # Not on its own: the same registration would be refused again.
    assert generate_remessa(bank_db, actor=OPERATOR).files == []

    with pytest.raises(Forbidden):
        send_registration_again(bank_db, actor=VIEWER, charge_id=charge_id)
    resent = send_registration_again(bank_db, actor=OPERATOR, charge_id=charge_id)
    assert resent.attempt == 2 and "48 CEP inválido" in resent.rejection
    assert scalar(
        bank_db, "SELECT registration_rejection FROM charges WHERE id = :id", id=charge_id
    ) is None  # fmt: skip
    assert scalar(
        bank_db,
        "SELECT count(*) FROM charge_events WHERE charge_id = :id "
        "AND kind = 'registration_resent'",
        id=charge_id,
    ) == 1  # fmt: skip
    assert scalar(
        bank_db,
        "SELECT count(*) FROM audit_events WHERE action = 'charge.registration_resent' "
        "AND subject = :s",
        s=f"charge:{charge_id}",
    ) == 1  # fmt: skip
    with pytest.raises(OperatorError, match="nothing to send again"):
        send_registration_again(bank_db, actor=OPERATOR, charge_id=charge_id)

    again = generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "2.rem")
    assert (again.registrations, again.write_offs, again.files[0].nsa) == (1, 0, 2)
    (p,) = p_lines(tmp_path / "2.rem")
    assert field(p, 16, 17) == "01" and int(field(p, 43, 57)) == nosso
    assert generate_remessa(bank_db, actor=OPERATOR).files == []  # once
    attempts = scalar(
        bank_db,
        "SELECT string_agg(attempt::text, ',' ORDER BY attempt) FROM remessa_items "
        "WHERE charge_id = :id AND kind = 'registration'",
        id=charge_id,
    )
    assert attempts == "1,2"
    with pytest.raises(IntegrityError), bank_db.begin() as conn:  # never twice per attempt
        conn.execute(
            text(
                "INSERT INTO remessa_items (remessa_id, position, charge_id, kind, attempt) "
                "SELECT max(id), 99, :id, 'registration', 2 FROM remessas"
            ),
            {"id": charge_id},
        )


def test_a_canceled_charge_is_not_sent_again_nor_written_off_before_registration(
    bank_db: Engine, tmp_path: Path
) -> None:
    charge_id, _ = _refused_charge(bank_db, tmp_path)
    cancel_charge(bank_db, charge_id=charge_id, reason="debt renegotiated", actor=OPERATOR)
    with pytest.raises(OperatorError, match="canceled"):
        send_registration_again(bank_db, actor=OPERATOR, charge_id=charge_id)
    # Refused, so never registered: no write-off request for it either.
    assert generate_remessa(bank_db, actor=OPERATOR).files == []
    with pytest.raises(OperatorError, match="no charge #0"):
        send_registration_again(bank_db, actor=OPERATOR, charge_id=0)


def test_segment_q_carries_a_stored_address_and_the_remessa_counts_those_without(
    bank_db: Engine, tmp_path: Path
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(3)))
    debtor_id = scalar(bank_db, "SELECT debtor_id FROM charges ORDER BY id LIMIT 1")
    with pytest.raises(OperatorError, match="CEP"):
        save_debtor_address(
            bank_db, actor=OPERATOR, debtor_id=debtor_id, street="Rua A, 1", district="",
            zip_code="0131", city="São Paulo", state="SP",
        )  # fmt: skip
    with pytest.raises(OperatorError, match="state"):
        save_debtor_address(
            bank_db, actor=OPERATOR, debtor_id=debtor_id, street="Rua A, 1", district="",
            zip_code="01310-100", city="São Paulo", state="XX",
        )  # fmt: skip
    with pytest.raises(Forbidden):
        save_debtor_address(
            bank_db, actor=VIEWER, debtor_id=debtor_id, street="Rua A, 1", district="",
            zip_code="01310-100", city="São Paulo", state="SP",
        )  # fmt: skip
    saved = "SELECT count(*) FROM audit_events WHERE action = 'debtor.address_saved'"
    before = scalar(bank_db, saved)  # the audit trail outlives each test: count what is added
    save_debtor_address(
        bank_db, actor=OPERATOR, debtor_id=debtor_id, street="Avenida Paulista, 1000 - ap 5",
        district="Bela Vista", zip_code="01310-100", city="São Paulo", state="sp",
    )  # fmt: skip
    assert scalar(bank_db, saved) == before + 1

    result = generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "r.rem")
    assert result.without_address == 2
    assert remessa_history(bank_db, actor=VIEWER)[0]["without_address"] == 2
    lines = (tmp_path / "r.rem").read_bytes().decode("ascii").split("\r\n")[:-1]
    q_lines = [line for line in lines if line[13] == "Q"]
    first = q_lines[0]  # FEBRABAN 11.3Q-16.3Q (CAIXA 67.118 3.5.4)
    assert field(first, 74, 113).rstrip() == "AVENIDA PAULISTA, 1000 - AP 5"
    assert field(first, 114, 128).rstrip() == "BELA VISTA"
    assert (field(first, 129, 133), field(first, 134, 136)) == ("01310", "100")
    assert field(first, 137, 151).rstrip() == "SAO PAULO"
    assert field(first, 152, 153) == "SP"
    for other in q_lines[1:]:
        assert field(other, 74, 128).strip() == "" and field(other, 129, 136) == "00000000"
