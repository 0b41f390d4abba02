"""The shared leaf: settings, operator errors, statuses, pt-BR formatting, documents,
search words and the charge filter values. Imports nothing else of ours; db/ may import it."""
