-- 004: payments received for a charge, and the history of each charge.
-- A charge's status is recomputed from the sum of its payments (billing/payments.py);
-- "overdue" is derived from due_date and status when read, never stored.

CREATE TABLE payments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No cascade: money received is never deleted together with a charge.
    charge_id bigint NOT NULL REFERENCES charges (id),
    paid_at timestamptz NOT NULL,
    paid_amount numeric(14, 2) NOT NULL CHECK (paid_amount > 0),
    paid_by text NOT NULL,
    source text NOT NULL CHECK (source IN ('webhook', 'operator')),
    -- sha256 of the bank's (debtId, paidAt, paidAmount, paidBy), normalised: the same
    -- notification delivered twice is recorded once. Operator payments get a unique key.
    idempotency_key text COLLATE "C" NOT NULL,
    -- The notification as received (the webhook's body) or the operator's action.
    payload jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_idempotency_key_key UNIQUE (idempotency_key)
);
CREATE INDEX payments_charge_idx ON payments (charge_id);
CREATE TRIGGER payments_updated_at BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Append-only history of a charge: every payment recorded, every status change,
-- every operator action with its reason and who did it.
CREATE TABLE charge_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charge_id bigint NOT NULL REFERENCES charges (id),
    kind text NOT NULL CHECK (kind IN ('payment', 'marked_paid', 'canceled', 'status')),
    from_status text,
    to_status text,
    payment_id bigint REFERENCES payments (id),
    amount numeric(14, 2),
    reason text,
    actor text NOT NULL,
    -- The moment of the insert, not of the transaction's start: events written under the
    -- charge's row lock then sort in the order they happened.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- An operator's action always says why.
    CONSTRAINT charge_events_reason_required CHECK (
        kind NOT IN ('marked_paid', 'canceled') OR length(btrim(reason)) > 0
    )
);
CREATE INDEX charge_events_charge_created_idx ON charge_events (charge_id, created_at);
CREATE INDEX charge_events_payment_idx ON charge_events (payment_id)
    WHERE payment_id IS NOT NULL;
CREATE TRIGGER charge_events_updated_at BEFORE UPDATE ON charge_events
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
