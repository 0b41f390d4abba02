"""Money in: payments reported by the bank's webhook or recorded by an operator,
and what they do to a charge's status (service)."""
