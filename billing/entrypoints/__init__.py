"""The doors other than the dashboard: the command line (cli), the HTTP API (api)
and the background worker (worker). Thin: they parse, check the actor and call the domain."""
