-- 005: indexes that let the dashboard's counts and sums read an index alone.
--
-- Measured with bench/bench_dashboard.py on 1.1M charges (goal: p95 <= 300 ms per
-- query): every count+sum, the amount sort and the Overview's charge totals met it only
-- with these. A count+sum only needs amount besides the columns it filters on, so
-- carrying amount in the index (INCLUDE) turns it into an index-only scan.
--
-- What they cost: INCLUDE indexes are never deduplicated, so each is a few times the
-- size of the plain one it replaces; a large import rebuilds them all after loading
-- (db/loading.py, indexes_rebuilt_after: a sorted build, about 0.5-1.5 s each at 1.1M
-- rows), a small one updates them row by row.
--
-- Index-only scans skip the table only on pages the visibility map marks all-visible:
-- VACUUM (autovacuum, after an import) sets it; until then they read the table too.
--
-- `id` is left out: no keyset page can be answered from an index (a page shows debt_id,
-- status, import and debtor), so the id comes from the table with the rest of the row.
--
-- Names stay those of the indexes they replace, which queries and the benchmark cite.

SET LOCAL maintenance_work_mem = '256MB';

-- The status filters ("paid", the derived "overdue": status and due_date < today),
-- their pages in due-date order, their count+sum; the Overview's charge totals
-- (db/overview.py: grouped by status and due date, summing amount, in index order).
DROP INDEX charges_status_due_date_idx;
CREATE INDEX charges_status_due_date_idx ON charges (status, due_date) INCLUDE (amount);

-- The due-date range and the default due-date order (keyset pages, the export),
-- and the count+sum of a due-date range.
DROP INDEX charges_due_date_idx;
CREATE INDEX charges_due_date_idx ON charges (due_date) INCLUDE (amount);

-- A debtor's charges: searches by name, e-mail or CPF/CNPJ fetch charges by debtor_id,
-- and their count+sum; the Debtors page's charge counts and one debtor's totals.
DROP INDEX charges_debtor_idx;
CREATE INDEX charges_debtor_idx ON charges (debtor_id) INCLUDE (amount);

-- New: the amount sort (keyset pages by amount, either direction), an amount range,
-- and the unfiltered count+sum (the smallest index holding every amount).
CREATE INDEX charges_amount_idx ON charges (amount);
