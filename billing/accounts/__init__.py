"""Who may do what: accounts and sign-in (users), roles and permissions (access),
and the audit trail every change to money or personal data writes (audit)."""
