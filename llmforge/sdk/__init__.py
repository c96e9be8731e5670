"""Notebook SDK: a Python client for the control plane's REST API (jobs, datasets, models, deployments, knowledge bases)."""
