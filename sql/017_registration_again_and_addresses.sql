-- 017: a registration the bank refused, sent again; debtors' postal addresses for the
-- remessa's segment Q (issue 13).

-- Sending a refused registration again. Each operator's "send to the bank again" opens
-- a new attempt on the charge; a remessa carries a charge's registration once per
-- attempt (remessa_items_once below), so a charge goes out again once after each reset
-- and never twice for the same attempt. NULL is the first attempt: no default, so only
-- the catalogue changes, however many charges there are.
ALTER TABLE charges ADD COLUMN registration_attempt smallint;

ALTER TABLE remessa_items ADD COLUMN attempt smallint NOT NULL DEFAULT 1;
-- No foreign key to remessas either, for the reason 011 gives for charges: its check
-- is a trigger event per row, queued to the end of the statement. Measured on 1.1M
-- charges (the benchmark's data, one run each): recording the items took 9.4 s with it
-- and 2.2 s without it, of a remessa of 34.2 s and 18.7 s. The items are written by one
-- statement, in the transaction that creates their remessas (`_create_files`), and a
-- remessa is never deleted.
ALTER TABLE remessa_items DROP CONSTRAINT remessa_items_remessa_id_fkey;
ALTER TABLE remessa_items DROP CONSTRAINT remessa_items_once;
ALTER TABLE remessa_items ADD CONSTRAINT remessa_items_once UNIQUE (charge_id, kind, attempt);

ALTER TABLE charge_events DROP CONSTRAINT charge_events_kind_check;
ALTER TABLE charge_events ADD CONSTRAINT charge_events_kind_check CHECK (
    kind IN ('payment', 'marked_paid', 'canceled', 'status', 'registered',
             'registration_rejected', 'registration_resent', 'written_off')
);

-- A debtor's postal address, as segment Q carries it (CNAB 240 G032-G036). The debtor
-- file has no address (and its format stays as it is): an operator stores one when a
-- bank asks for it. A debtor without a row goes out with the address fields blank, and
-- the remessa says how many charges did. No foreign key to the partitioned debtors
-- table, as for remessa_items; a debtor is never deleted.
CREATE TABLE debtor_addresses (
    debtor_id bigint PRIMARY KEY,
    street text NOT NULL CHECK (length(btrim(street)) BETWEEN 1 AND 120),
    district text NOT NULL DEFAULT '' CHECK (length(district) <= 60),
    zip_code text NOT NULL CHECK (zip_code ~ '^[0-9]{8}$'),
    city text NOT NULL CHECK (length(btrim(city)) BETWEEN 1 AND 60),
    state text NOT NULL CHECK (state ~ '^[A-Z]{2}$'),
    updated_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER debtor_addresses_updated_at BEFORE UPDATE ON debtor_addresses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- How many registrations of each remessa went out with no address, for the history.
ALTER TABLE remessas ADD COLUMN without_address integer;
