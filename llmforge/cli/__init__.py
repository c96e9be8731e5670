"""The ``llmforge`` command line: one module per domain, each command a thin call into a core or the REST API."""
