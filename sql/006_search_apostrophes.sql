-- 006: names written with an apostrophe are found by their joined form too.
--
-- billing.search.fold_for_search now stores "d'avila davila" for "D'Ávila" (and turns
-- typographic apostrophes into the plain one first), so "davila", "avila" and "d'avila"
-- all find the debtor. This brings the names already imported to the same form; the
-- accents were already folded away when they were stored. (No percent signs in this
-- file: the migration runner's driver reads them as placeholders.)

UPDATE debtors AS d
SET search_name = f.folded || ' ' || replace(f.folded, '''', '')
FROM (
    SELECT id, translate(search_name, '’ʼ‘`', '''''''''') AS folded
    FROM debtors
) AS f
WHERE f.id = d.id
  AND strpos(f.folded, '''') > 0;
