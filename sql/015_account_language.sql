-- 015: the language each account reads the dashboard in (issue 12).
--
-- NULL: the default, LANGUAGE (pt_BR unless set). The sidebar's switch stores the
-- signed-in account's choice here, so it follows the account to any browser.

ALTER TABLE accounts
    ADD COLUMN language text
    CONSTRAINT accounts_language_known CHECK (language IN ('pt_BR', 'en'));
