"""One rank of a multi-process job: ``python -m worker.rank JOB_ID OWNER`` under ``accelerate launch``.

The worker that claimed the job (``OWNER``, its WORKER_ID) starts the group (``worker.group``). Every rank
reads the job's config from the store and runs the same trainer; ``adrpo_engine.distributed`` finds the group.
Rank 0 alone reports, through a ``StoreSink`` that acts for the owner (so ownership checks, cancel and the
watchdog work as for a one-process job). SIGTERM sets the trainer's stop flag: the ranks agree to stop after
the current step, rank 0 writes the checkpoint, and every rank exits.

Each rank leaves one file in ``run_dir/.group/``: ``rank-K.json`` with its outcome or its error. A rank
that leaves none died without a word (killed, out of memory): the worker treats the job as crashed.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from .group import GROUP_DIR, outcome_path, pid_path, write_outcome


def main(argv: list[str]) -> int:
    import threading

    from adrpo_engine.config import ConfigError, validate_config
    from adrpo_engine.distributed import stop_on_signals
    from adrpo_engine.runner import create_trainer
    from adrpo_engine.trainers.base import TrainingError

    from .db import Store, existing
    from .lifecycle import StoreSink
    from .models import Job
    from .settings import Settings
    from .tasks import describe_failure, init_worker, queue_eval
    from .validation import SubmissionError

    job_id, owner = argv
    rank = int(os.environ.get("RANK", "0"))
    settings = Settings()
    run_dir = settings.run_dir(job_id)
    (run_dir / GROUP_DIR).mkdir(parents=True, exist_ok=True)
    pid_path(run_dir, rank).write_text(str(os.getpid()))
    stop = threading.Event()
    with stop_on_signals(stop):
        sink = None
        try:
            store = Store(settings.database_url)
            with store.session() as session:
                config = validate_config(existing(session, Job, job_id).config)
            if rank == 0:
                sink = StoreSink(store, job_id, run_dir, worker=owner, interrupted=stop.is_set)
                if config.eval.every_checkpoint:
                    ctx = init_worker(settings)
                    sink.after_checkpoint = lambda step: queue_eval(ctx, job_id, step, "checkpoint", run_dir)
            trainer = create_trainer(config, run_dir, sink)
            trainer.stop_event = stop
            result = trainer.run(resume=True)
        except (TrainingError, ConfigError, SubmissionError) as error:
            write_outcome(outcome_path(run_dir, rank), {"error": str(error), "kind": "training"})
            return 3
        except BaseException as error:  # noqa: BLE001 - every failure leaves its reason for the worker
            if rank == 0 or not isinstance(error, KeyboardInterrupt):
                _append_traceback(run_dir, rank)
            write_outcome(outcome_path(run_dir, rank), {"error": describe_failure(error), "kind": "other"})
            return 4
    reason = sink.stop_reason if sink is not None else None
    write_outcome(
        outcome_path(run_dir, rank),
        {"status": result.status, "stop_reason": reason, "last_step": result.last_step},
    )
    return 0


def _append_traceback(run_dir: Path, rank: int) -> None:
    from .artifacts import append_log

    append_log(run_dir, f"rank {rank}: {traceback.format_exc()}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
