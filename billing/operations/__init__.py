"""Running the system: database backup and restore, audited."""
