"""The Celery application, configured from :class:`~worker.settings.Settings`.

Two queues: ``train`` (training jobs) and ``generate`` (comparisons, evals, adapter exports and merged
models), so a GPU fleet can dedicate workers; the embedded worker of `adrpo serve` consumes both. One task
at a time per worker (solo pool, prefetch 1) and late acks: a message is acknowledged only after its task
has finished.
"""

from __future__ import annotations

from celery import Celery

from .broker import install as install_atomic_filesystem_broker
from .settings import Settings

TRAIN_QUEUE = "train"
GENERATE_QUEUE = "generate"
QUEUES = (TRAIN_QUEUE, GENERATE_QUEUE)

RUN_JOB = "adrpo.run_job"
RUN_COMPARISON = "adrpo.run_comparison"
RUN_DRY_RUN = "adrpo.run_reward_dry_run"
EXPORT_ADAPTER = "adrpo.export_adapter"
EXPORT_MERGED = "adrpo.export_merged"
RUN_EVAL = "adrpo.run_eval"

TASK_ROUTES = {
    RUN_JOB: {"queue": TRAIN_QUEUE},
    RUN_COMPARISON: {"queue": GENERATE_QUEUE},
    RUN_DRY_RUN: {"queue": GENERATE_QUEUE},
    EXPORT_ADAPTER: {"queue": GENERATE_QUEUE},
    EXPORT_MERGED: {"queue": GENERATE_QUEUE},
    RUN_EVAL: {"queue": GENERATE_QUEUE},
}


install_atomic_filesystem_broker()  # filesystem:// writes whole message files (worker/broker.py)


def broker_transport_options(settings: Settings) -> dict:
    if not settings.embedded_broker:
        return {}
    # kombu's filesystem transport: producers and consumers share one folder of message files.
    queue_dir = settings.broker_dir / "queue"
    control_dir = settings.broker_dir / "control"
    for folder in (queue_dir, control_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        "control_folder": str(control_dir),
        "store_processed": False,
        "polling_interval": settings.broker_poll_s,
    }


def configure(app: Celery, settings: Settings) -> Celery:
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=TRAIN_QUEUE,
        task_routes=TASK_ROUTES,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,  # results live in the job store, not in a result backend
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
    )
    return app


def create_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings`` (the web process uses it to send tasks by name)."""
    return configure(Celery("adrpo", set_as_current=False), settings)


# The app the worker process runs; tasks.py registers on it and the CLI configures it before starting.
celery_app = Celery("adrpo")
