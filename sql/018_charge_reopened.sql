-- 018: a canceled charge reopened by an operator (issue 12), with its reason, as its own
-- event on the charge's history. Like a cancel, a reopen always says why.

ALTER TABLE charge_events DROP CONSTRAINT charge_events_kind_check;
ALTER TABLE charge_events ADD CONSTRAINT charge_events_kind_check CHECK (
    kind IN ('payment', 'marked_paid', 'canceled', 'status', 'registered',
             'registration_rejected', 'registration_resent', 'written_off', 'reopened')
);

ALTER TABLE charge_events DROP CONSTRAINT charge_events_reason_required;
ALTER TABLE charge_events ADD CONSTRAINT charge_events_reason_required CHECK (
    kind NOT IN ('marked_paid', 'canceled', 'reopened') OR length(btrim(reason)) > 0
);
