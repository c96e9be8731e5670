"""Entry point of the ``llmforge`` command: assembles each domain's commands."""

from __future__ import annotations

import typer

from llmforge.cli import admin, jobs, stack

app = typer.Typer(
    name="llmforge",
    help="llmforge: data, training, registry, serving and RAG as tracked jobs on one control plane.\n\n"
    "Start here: 'llmforge up' runs the local stack and prints the console URL and an admin key.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(stack.up)
app.command()(stack.api)
app.command()(stack.worker)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.projects_app, name="projects")
app.add_typer(jobs.app, name="jobs")


@app.command()
def openapi() -> None:
    """Print the OpenAPI document of the control plane (for client generators)."""
    import json

    from llmforge.app import create_app

    print(json.dumps(create_app(maintenance=False).openapi(), indent=2))


def main() -> None:
    app()
