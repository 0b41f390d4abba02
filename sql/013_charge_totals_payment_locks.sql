-- 013: the payment triggers of migration 009 lock every charge they read, not only the
-- partially paid ones.
--
-- 009 read the charges of new payments FOR SHARE in a subquery, with the test on status
-- outside it; the planner moved that test into the subquery, so only charges already
-- partially paid were locked. A payment written without the charge's lock (billing's
-- paths take it; a statement in SQL need not) on an issued charge that another
-- transaction was turning partially paid could then be missed by both: that one summed
-- the payments it could see, this one saw an issued charge. Now the charges are locked in
-- a statement of their own, and the next statement, which sees every change committed
-- meanwhile, reads their status.

SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

CREATE OR REPLACE FUNCTION charge_totals_after_payment_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM 1 FROM charges WHERE id IN (SELECT charge_id FROM inserted_payments)
    ORDER BY id FOR SHARE;
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT c.status, c.due_date, 0, 0, sum(p.paid_amount)
    FROM inserted_payments AS p
    JOIN charges AS c ON c.id = p.charge_id
    WHERE c.status = 'partially_paid'
    GROUP BY c.status, c.due_date;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION charge_totals_after_payment_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM 1 FROM charges
    WHERE id IN (SELECT charge_id FROM payments_before UNION SELECT charge_id FROM payments_after)
    ORDER BY id FOR SHARE;
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT c.status, c.due_date, 0, 0, sum(p.paid_amount)
    FROM (SELECT charge_id, -paid_amount AS paid_amount FROM payments_before
          UNION ALL
          SELECT charge_id, paid_amount FROM payments_after) AS p
    JOIN charges AS c ON c.id = p.charge_id
    WHERE c.status = 'partially_paid'
    GROUP BY c.status, c.due_date
    HAVING sum(p.paid_amount) <> 0;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION charge_totals_after_payment_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM 1 FROM charges WHERE id IN (SELECT charge_id FROM deleted_payments)
    ORDER BY id FOR SHARE;
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT c.status, c.due_date, 0, 0, -sum(p.paid_amount)
    FROM deleted_payments AS p
    JOIN charges AS c ON c.id = p.charge_id
    WHERE c.status = 'partially_paid'
    GROUP BY c.status, c.due_date;
    RETURN NULL;
END
$$;
