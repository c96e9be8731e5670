"""Control-plane infrastructure: database, auth, jobs, queue and process supervision.

The platform never imports a service; services' edges (``router.py``,
``tasks.py``) import it, and ``llmforge.app`` wires everything together.
"""
