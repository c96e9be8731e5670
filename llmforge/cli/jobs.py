"""``llmforge jobs``: list, show, submit, logs, cancel — over the REST API of a running stack."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from llmforge.cli import api_client
from llmforge.cli.output import console, emit, fail

app = typer.Typer(help="Jobs: every long operation (list, show, submit, logs, cancel).", no_args_is_help=True)
UrlOpt = Annotated[str | None, typer.Option("--url", help="API URL (LLMFORGE_URL; default http://127.0.0.1:8000).")]
KeyOpt = Annotated[str | None, typer.Option("--key", help="API key (LLMFORGE_API_KEY; default the local admin key).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
COLUMNS = ["id", "kind", "status", "attempt", "created", "error"]


def _row(job: dict) -> dict:
    # a table row must fit an 80-column terminal next to a 32-character id: `jobs show` has everything
    error = (job.get("error") or "")
    return {**job, "created": job["created_at"][5:16].replace("T", " "), "attempt": f"{job['attempt']}/{job['max_attempts']}",
            "error": error if len(error) <= 40 else error[:39] + "…"}


@app.command("list")
def list_jobs(
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed or cancelled.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this job kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    url: UrlOpt = None, key: KeyOpt = None, as_json: JsonOpt = False,
) -> None:
    """Newest jobs first."""
    params = {k: v for k, v in {"project": project, "status": status, "kind": kind, "limit": limit}.items() if v}
    with api_client.client(url, key) as c:
        page = api_client.call(c, "GET", "/api/v1/jobs", params=params)
    emit(page["items"] if as_json else [_row(j) for j in page["items"]], as_json=as_json, columns=COLUMNS, title="jobs")


@app.command("show")
def show(job_id: str, url: UrlOpt = None, key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """One job in full."""
    with api_client.client(url, key) as c:
        job = api_client.call(c, "GET", f"/api/v1/jobs/{job_id}")
    if as_json:
        emit(job, as_json=True)
    else:
        for k, v in job.items():
            console.print(f"[bold]{k:>16}[/bold]  {json.dumps(v) if isinstance(v, (dict, list)) else v}")


@app.command("submit")
def submit(
    kind: Annotated[str, typer.Argument(help="Job kind, e.g. sleep (see GET /api/v1/jobs/kinds).")],
    spec: Annotated[str, typer.Option(help="The spec as JSON, or @file.json.")] = "{}",
    project: Annotated[str | None, typer.Option(help="Project name.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the logs until the job ends; exit 1 unless it succeeds.")] = False,
    url: UrlOpt = None, key: KeyOpt = None, as_json: JsonOpt = False,
) -> None:
    """Submit a job."""
    try:
        body = json.loads(open(spec[1:]).read() if spec.startswith("@") else spec)
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"--spec is not valid JSON: {exc}")
    with api_client.client(url, key) as c:
        job = api_client.call(c, "POST", "/api/v1/jobs", json={"kind": kind, "spec": body, "project": project})
    if wait:
        _follow(job["id"], url, key)
        with api_client.client(url, key) as c:
            job = api_client.call(c, "GET", f"/api/v1/jobs/{job['id']}")
    emit(job if as_json else _row(job), as_json=as_json, columns=COLUMNS)
    if wait and job["status"] != "succeeded":
        raise SystemExit(1)


def _follow(job_id: str, url: str | None, key: str | None) -> None:
    import httpx

    with api_client.client(url, key, timeout=None) as c:
        try:
            _stream_logs(c, job_id)
        except httpx.TransportError as exc:
            api_client.unreachable(c, exc)


def _stream_logs(c, job_id: str) -> None:  # noqa: ANN001 - httpx.Client
    with c.stream("GET", f"/api/v1/jobs/{job_id}/logs", params={"follow": "true"}) as r:
        if r.status_code >= 400:
            r.read()
            api_client.call(c, "GET", f"/api/v1/jobs/{job_id}")  # renders the error
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "end":
                    console.print(f"-- job {data['status']} --", style="dim", markup=False)
                    return
                console.print(data["line"], markup=False, highlight=False)
                event = None


@app.command("logs")
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream new lines until the job ends.")] = False,
    url: UrlOpt = None, key: KeyOpt = None,
) -> None:
    """Print a job's log."""
    if follow:
        _follow(job_id, url, key)
        return
    with api_client.client(url, key) as c:
        text = api_client.call(c, "GET", f"/api/v1/jobs/{job_id}/logs")
    console.print(text, markup=False, highlight=False, end="")


@app.command("cancel")
def cancel(job_id: str, url: UrlOpt = None, key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel a queued or running job (its whole process tree is stopped)."""
    with api_client.client(url, key) as c:
        job = api_client.call(c, "POST", f"/api/v1/jobs/{job_id}/cancel")
    emit(job if as_json else _row(job), as_json=as_json, columns=COLUMNS)
