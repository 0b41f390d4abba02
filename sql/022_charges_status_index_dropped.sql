-- 022: charges lose charges_status_due_date_idx (status, due_date) INCLUDE (amount).
--
-- It served the status filters' count+sum (005), which the Overview's kept figures have
-- answered since 009 (charge_totals, per status and due date), and their pages, which the
-- planner now reads in due-date order on charges_due_date_idx, testing the status: in
-- bench_dashboard at 5.5M charges every status page and count read something else
-- (sixth pass of issue 9); only the export of a due range still chose it. Every large
-- import paid for it: the largest of the partition's indexes to build (1.0 s of a 1.1M-row
-- file's attach on PostgreSQL 15, 43 MB a month).

DROP INDEX charges_status_due_date_idx;
