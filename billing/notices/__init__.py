"""E-mail to debtors: which notices are due when (planning), rendering and SMTP
(mailer, templates/), and sending a batch with retries and audit (dispatch)."""
