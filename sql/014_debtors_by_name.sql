-- 014: the Debtors page in name order reads an index, not every debtor.
--
-- Its pages are ORDER BY name, id LIMIT 50, keyset by (name, id) (db/charges.py,
-- debtor_rows_sql). Without an index on that order each page sorted every debtor:
-- bench_dashboard at 5.5M charges (about 1.4M debtors) measured p95 557 ms for the first
-- page and 304 ms for the next, against a goal of 300 ms.

SET LOCAL maintenance_work_mem = '256MB';

CREATE INDEX debtors_name_idx ON debtors (name, id);
