"""CNAB 240 files exchanged with the bank: the layouts (tables of positions), the remessa
(registrations and write-offs sent), the retorno (what the bank reports back), and the
service that ties them to charges, payments and the audit trail."""
