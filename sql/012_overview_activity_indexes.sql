-- 012: the Overview's activity reads this month's payments and the last 90 days' notices
-- only, not every payment and notice ever recorded.
--
-- "Received this month" summed paid_amount over payments filtered on paid_at, and the
-- notices chart counted sent notices filtered on sent_at: with no index on either, each
-- visit read the whole table, which grows with every charge ever paid or notified
-- (bench_dashboard at 5.5M charges, 660,000 payments: 98 ms for the month's sum alone,
-- the Overview's activity p95 65 ms at 1.1M and 273 ms at 5.5M). Indexed, the month's
-- sum is an index-only scan of the month's payments (10 ms there).
--
-- What they cost: one more index entry per payment, and one per notice when it is sent
-- (partial index: queued, failed and skipped notices have none).

CREATE INDEX payments_paid_at_idx ON payments (paid_at) INCLUDE (paid_amount);
CREATE INDEX notices_sent_at_idx ON notices (sent_at) WHERE status = 'sent';
