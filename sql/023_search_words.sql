-- 023: a name's searchable words are cut the way a search term is, and split, not parsed.
--
-- debtor_search_words_idx indexed to_tsvector('simple', search_name): PostgreSQL's
-- text-search parser run on every name while the index is built, the most expensive of a
-- large import's index builds (issue 9, seventh pass; 1.1M names, embedded PostgreSQL 18:
-- 2.1 s with its parallel workers, 4.2 s without; PostgreSQL 15 builds it alone, 2.9 s).
-- The import now stores search_name as the name's words with one space between them
-- (billing.core.search.fold_for_search: runs of a-z and 0-9, what search_words cuts a
-- search term into), so the index only splits it on spaces: 0.8 s with the workers,
-- 2.2 s without. A search's words are compared with the very words the import stored;
-- the parser's own rules (a hyphenated word kept whole besides its parts, a letter
-- accents do not fold, such as "ø", starting a new word on one side and not the other)
-- no longer decide what a name is found by.
--
-- Names stored before are brought to that form: anything but a-z and 0-9 becomes a
-- space (a folded name was already lower-case and without accents, its apostrophe forms
-- already joined). debtors' update trigger (020) carries the change to debtor_search.

SET LOCAL maintenance_work_mem = '256MB';
SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

UPDATE debtors
SET search_name = btrim(regexp_replace(search_name, '[^0-9a-z]+', ' ', 'g'), ' ')
WHERE search_name !~ '^([0-9a-z]+( [0-9a-z]+)*)?$';

DROP INDEX debtor_search_words_idx;
-- Empty words (two spaces written by a tool) are left out: a lexeme cannot be empty.
CREATE INDEX debtor_search_words_idx ON debtor_search
    USING gin (array_to_tsvector(array_remove(string_to_array(search_name, ' '), '')));

-- Statistics of the new expression, for the planner's estimate of a search's rows.
ANALYZE debtor_search;
