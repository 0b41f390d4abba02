-- 005: indexes that let the dashboard's counts and sums read an index alone.
--
-- Measured with bench/bench_dashboard.py on 1.1M charges (goal: p95 <= 300 ms per
-- query): the counts and sums over many charges, the amount sort and the Overview's
-- charge totals met it only with these. A count+sum needs amount besides the columns it
-- filters on; carried in the index (INCLUDE), it makes the query an index-only scan.
--
-- What they cost: INCLUDE indexes are never deduplicated, so each is several times the
-- plain one it replaces (at 1.1M charges 8 -> 43 MB, 8 -> 33 MB, 14 -> 34 MB, plus 25 MB
-- for amount), and a large import rebuilds them after loading (db/loading.py,
-- indexes_rebuilt_after): 5.0 s of index builds instead of 3.4 s. A small import
-- updates one more index per row.
--
-- Index-only scans skip the table only on pages the visibility map marks all-visible,
-- which VACUUM sets (autovacuum picks up a large import within a minute or two). Until
-- then the planner reads the table instead and the largest counts miss the goal.
--
-- `id` is not included: no keyset page is answered from an index alone (a page shows
-- debt_id, status, import and debtor), so its id comes from the table with the row.
--
-- The replaced indexes keep their names, which queries and the benchmark cite.

SET LOCAL maintenance_work_mem = '256MB';

-- The status filters ("paid"; the derived "overdue": unpaid status, due_date < today),
-- their pages in due-date order and their count+sum; the Overview's charge totals
-- (db/overview.py: per status and due date, summing amount, read in index order).
DROP INDEX charges_status_due_date_idx;
CREATE INDEX charges_status_due_date_idx ON charges (status, due_date) INCLUDE (amount);

-- The due-date range and the default due-date order (keyset pages, the export), the
-- count+sum of a due-date range, and the unfiltered count+sum (the planner reads the
-- smallest index that holds every amount).
DROP INDEX charges_due_date_idx;
CREATE INDEX charges_due_date_idx ON charges (due_date) INCLUDE (amount);

-- A debtor's charges: a search by name, e-mail or CPF/CNPJ reaches charges through
-- debtor_id, its count+sum here included; the Debtors page's counts and a debtor's totals.
DROP INDEX charges_debtor_idx;
CREATE INDEX charges_debtor_idx ON charges (debtor_id) INCLUDE (amount);

-- New: the amount order (keyset pages by amount, either direction), and an amount
-- range with its count+sum.
CREATE INDEX charges_amount_idx ON charges (amount);
