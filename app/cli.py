"""The `adrpo` command: the engine's train/presets/rewards plus the service's serve, worker and db."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Annotated

import typer

from adrpo_engine.cli import app

db_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The job store's schema.")
app.add_typer(db_app, name="db")

WORKER_STOP_GRACE_S = 60.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def load_settings():
    """The service settings, or exit 2 with one line (half an auth configuration, a bad number, ...)."""
    from pydantic import ValidationError

    from worker.settings import Settings

    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "settings"
        typer.echo(
            f"error: {where + ': ' if where != 'settings' else ''}{first['msg'].removeprefix('Value error, ')}",
            err=True,
        )
        raise typer.Exit(2) from None


def serve_notice(settings, host: str, insecure: bool) -> str | None:
    """The line `serve` prints about auth (None when auth is on); raises ValueError for a non-loopback
    bind without auth, which only --insecure allows."""
    if settings.auth_enabled:
        return None
    if host not in LOOPBACK_HOSTS and not insecure:
        raise ValueError(
            f"--host {host}: refusing to serve WITHOUT authentication on a non-loopback interface; set "
            "ADRPO_AUTH_USER and ADRPO_AUTH_PASSWORD, or pass --insecure if everyone who can reach it may run jobs"
        )
    return (
        f"warning: serving WITHOUT authentication on {host}: anyone who can reach this port can submit jobs "
        "and read every job's results (set ADRPO_AUTH_USER and ADRPO_AUTH_PASSWORD to turn auth on)"
    )


# Open studio tabs hold long-polling (server-sent events) connections; uvicorn would wait for them to
# close before stopping. After this many seconds it closes them itself, so Ctrl-C stops `adrpo serve`
# within ~10 s whatever is connected (the worker still checkpoints and hands back its running job).
GRACEFUL_SHUTDOWN_S = 3


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the Alembic migrations to ADRPO_DATABASE_URL (the default SQLite file too)."""
    from worker.db import upgrade

    settings = load_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}: {_safe_url(settings.database_url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command("worker")
def worker_command(
    queues: Annotated[str, typer.Option("--queues", "-Q", help="Comma-separated: train, generate.")] = "train,generate",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    parent_pid: Annotated[int | None, typer.Option(hidden=True, help="Exit when this parent process is gone.")] = None,
) -> None:
    """Run a worker: one job at a time (solo pool: a prefork child hangs on torch), for scale-out run one per GPU."""
    from worker.celery_app import QUEUES
    from worker.db import upgrade
    from worker.tasks import celery_app, init_worker, start_heartbeat

    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in chosen if q not in QUEUES]
    if unknown or not chosen:
        typer.echo(
            f"error: --queues: unknown queue {unknown[0] if unknown else ''!r} (choose from {', '.join(QUEUES)})",
            err=True,
        )
        raise typer.Exit(2)
    settings = load_settings()
    upgrade(settings.database_url)
    _leave_the_working_directory(settings)
    quiet_root_warning()
    context = init_worker(settings)
    start_heartbeat(context, parent_pid=parent_pid, on_orphaned=lambda: os.kill(os.getpid(), signal.SIGTERM))
    celery_app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--prefetch-multiplier=1",
            f"--queues={','.join(chosen)}",
            "--without-gossip",
            "--without-mingle",
            f"--loglevel={loglevel}",
            f"--hostname=adrpo-{os.getpid()}@%h",
        ]
    )


def _leave_the_working_directory(settings) -> None:
    """Run jobs from an empty folder: the model and dataset loaders try a hub id as a path relative to the
    working directory first, so an API job naming 'docs' or 'tests/x' must not find the worker's files."""
    empty = settings.data_dir / "worker-cwd"
    empty.mkdir(parents=True, exist_ok=True)
    os.chdir(empty)


def quiet_root_warning() -> None:
    """Celery warns at length when its worker runs as root (containers often do). The warning is about
    pickle: a root worker that unpickles messages runs whatever a broker user sends. Ours accepts JSON
    only (worker/celery_app.py: accept_content=["json"]; Celery itself refuses to start a root worker
    that accepts pickle), so the banner says nothing that applies and is silenced here."""
    import warnings

    from celery.exceptions import SecurityWarning

    warnings.filterwarnings("ignore", category=SecurityWarning, message=".*superuser privileges.*")


@app.command("push")
def push(
    job_id: Annotated[str, typer.Argument(help="The job id (see the Jobs tab or GET /api/jobs).")],
    repo: Annotated[str, typer.Option("--repo", help="Hub model repository, user/name (created if missing).")],
    checkpoint: Annotated[
        int | None, typer.Option("--checkpoint", help="Checkpoint step (default: the newest).")
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the files that would be uploaded, upload nothing.")
    ] = False,
) -> None:
    """Upload a job's adapter with its model card to the Hugging Face Hub (token: HF_TOKEN or `hf auth login`)."""
    from worker.hub_push import PushError, check_repo_id, push_folder, push_to_hub
    from worker.service import InvalidState, JobNotFound, JobService

    service = JobService(load_settings())
    try:
        check_repo_id(repo)
        if dry_run:
            with push_folder(service, job_id, checkpoint) as folder:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        typer.echo(f"{path.relative_to(folder)}  ({path.stat().st_size} bytes)")
            return
        typer.echo(f"pushed: {push_to_hub(service, job_id, repo, checkpoint, private)}")
    except (PushError, JobNotFound, InvalidState) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 7860,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Start the embedded worker.")] = True,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback --host without ADRPO_AUTH_USER/PASSWORD.")
    ] = False,
) -> None:
    """The studio and REST API, plus one embedded worker process; Ctrl-C (or SIGTERM) stops both."""
    import uvicorn

    from app.server import create_app

    settings = load_settings()
    try:
        notice = serve_notice(settings, host, insecure)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if notice:
        typer.echo(notice, err=True)
    web = create_app(settings)  # migrates the store, before the worker opens it
    supervisor = supervise_worker(settings, web.state.service) if worker else None
    # uvicorn re-raises the signal it caught after its graceful shutdown; turn SIGTERM into an exception
    # (like SIGINT) so the `finally` below still stops the worker instead of the process just dying.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"ADRPO Studio: open http://{shown}:{port} (REST API under /api; Ctrl-C stops it)")
    try:
        uvicorn.run(web, host=host, port=port, log_level="warning", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    except KeyboardInterrupt:
        pass
    finally:
        if supervisor is not None:
            supervisor.stop()


def _raise_keyboard_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def supervise_worker(settings, service):
    """Start the embedded worker under a WorkerSupervisor: restarted with back-off when it dies, and what it
    ran handed back to the queue at once; /api/health reports its state."""
    from app.supervisor import WorkerSupervisor
    from worker.celery_app import RUN_COMPARISON, RUN_JOB
    from worker.lifecycle import requeue_jobs_of_worker, requeue_stale_comparisons, worker_id_of

    def hand_back(pid: int) -> None:
        dead = worker_id_of(pid)
        for job_id in requeue_jobs_of_worker(service.store, dead, settings.artifacts_dir):
            service.celery.send_task(RUN_JOB, args=[job_id])
        for comparison_id in requeue_stale_comparisons(service.store, 0.0, worker=dead):
            service.celery.send_task(RUN_COMPARISON, args=[comparison_id])

    supervisor = WorkerSupervisor(
        lambda: start_worker_process(settings), on_exit=hand_back, stop_process=stop_worker_process
    )
    supervisor.start()
    service.worker_state = supervisor.state
    return supervisor


def start_worker_process(settings) -> subprocess.Popen:
    env = {**os.environ, **settings.environment()}
    command = [sys.executable, "-m", "app.cli", "worker", "--parent-pid", str(os.getpid()), "--loglevel", "WARNING"]
    return subprocess.Popen(command, env=env)


def stop_worker_process(process: subprocess.Popen, grace_s: float = WORKER_STOP_GRACE_S) -> None:
    """SIGTERM (Celery's warm shutdown: the running job stops after its step, is checkpointed and
    re-queued), then SIGKILL if it is still there after ``grace_s``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
