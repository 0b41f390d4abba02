"""The bank's files: CNAB 240 layouts as tables, the remessa written and the
retorno read, and the service that records what each file carries."""
