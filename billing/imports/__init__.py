"""A debtor file from bytes to charges: reading it in pieces (reading), checking each
row (validation) and the import service that loads, records and issues (service)."""
