"""Web console: the browser UI served by the control plane (templates, static files and its router)."""
