"""Job-service benchmarks: the metrics query the studio polls, and submit -> running latency.

1. Metrics fetch: one job with 10,000 steps x 15 metrics (150k rows); fetch everything since step 0 and
   the last 10 steps, with the service's query (worker/queries.py: one primary-key range per metric name,
   binary cursor on PostgreSQL) vs a baseline (the ORM rows grouped in Python), on SQLite and on
   PostgreSQL (a temporary database; skipped if no server). Median of --reps. Target: < 100 ms.
2. Submit -> running: a real `adrpo worker` process, tiny digits-even jobs submitted one after another;
   latency = the job's started_at - created_at (both stamped in the store). Embedded filesystem broker
   vs Redis (skipped if no server). Target: < 2 s embedded.

Usage (about a minute on one core): ``python bench/bench_service.py [--reps 5] [--jobs 5]``
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, LiteralString

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from adrpo_engine.paths import builtin_models_dir  # noqa: E402
from worker.db import Store, upgrade  # noqa: E402
from worker.models import Job, Metric  # noqa: E402
from worker.queries import fetch_metrics  # noqa: E402
from worker.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    import psycopg

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/12"
STEPS, METRICS = 10_000, 15


def median_ms(function, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def fill_metrics(store: Store) -> str:
    job_id = uuid.uuid4().hex[:16]
    with store.session() as session:
        session.add(
            Job(
                id=job_id,
                name="bench",
                kind="flow",
                algorithm="adrpo",
                config={},
                status="succeeded",
                total_steps=STEPS,
                current_step=STEPS,
                cancel_requested=False,
                attempts=1,
            )
        )
    names = [f"metric/{k:02d}" for k in range(METRICS)]
    rows = [
        {"job_id": job_id, "name": name, "step": step, "value": step * 0.001 + k}
        for step in range(1, STEPS + 1)
        for k, name in enumerate(names)
    ]
    with store.session() as session:
        for start in range(0, len(rows), 20_000):
            session.execute(insert(Metric), rows[start : start + 20_000])
    settle(store)
    return job_id


def settle(store: Store) -> None:
    """What autovacuum does to a table that grew by 150k rows: statistics and the visibility map (which
    lets PostgreSQL answer from the covering primary key alone)."""
    if store.dialect == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE metrics")


def orm_baseline(store: Store, job_id: str, since: int) -> dict:
    grouped = defaultdict(list)
    with store.session() as session:
        for row in session.scalars(
            select(Metric).where(Metric.job_id == job_id, Metric.step > since).order_by(Metric.name, Metric.step)
        ):
            grouped[row.name].append((row.step, row.value))
    return grouped


def bench_metrics(label: str, url: str, reps: int) -> None:
    upgrade(url)
    store = Store(url)
    job_id = fill_metrics(store)
    fetched = fetch_metrics(store.engine, job_id, 0)
    assert len(fetched) == METRICS and all(len(points) == STEPS for points in fetched.values())
    assert fetched == orm_baseline(store, job_id, 0)
    ours = median_ms(lambda: fetch_metrics(store.engine, job_id, 0), reps)
    base = median_ms(lambda: orm_baseline(store, job_id, 0), reps)
    tail = median_ms(lambda: fetch_metrics(store.engine, job_id, STEPS - 10), reps)
    print(
        f"{label:<10} all 150k points: {ours:7.1f} ms (ORM baseline {base:7.1f} ms, {base / ours:4.1f}x faster)"
        f"   last 10 steps: {tail:5.1f} ms   target < 100 ms: {'yes' if ours < 100 else 'NO'}"
    )
    store.engine.dispose()


def postgres_database() -> tuple[psycopg.Connection, str] | None:
    """A new, empty database on the local server, and the admin connection that drops it again."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as error:  # no server here: say so and go on
        print(f"postgresql skipped ({type(error).__name__})")
        return None
    name = f"adrpo_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(database_statement("CREATE DATABASE {}", name))
    return admin, name


def database_statement(template: LiteralString, name: str):
    """``template`` (a LiteralString with one ``{}``) with the database name quoted as an identifier."""
    from psycopg import sql

    return sql.SQL(template).format(sql.Identifier(name))


def start_worker(settings: Settings, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADRPO_")}
    env.update(settings.environment(), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def bench_latency(label: str, settings: Settings, jobs: int) -> list[float]:
    from worker.service import JobService

    service = JobService(settings)
    worker = start_worker(settings, settings.data_dir / f"worker-{label}.log")
    latencies = []
    try:
        overrides = {
            "steps": 2,
            "checkpoint_every": 2,
            "sample_every": 100,
            "group_size": 4,
            "prompts_per_step": 1,
            "flow.sample_steps": 2,
        }
        # The first job also waits for the worker to start (imports); it is not counted.
        for index in range(jobs + 1):
            job = service.submit(preset="digits-even", overrides=overrides)
            while (view := service.get_job(job.id)).status in ("queued", "running"):
                time.sleep(0.05)
            assert view.status == "succeeded", view.error
            if index:
                assert view.started_at is not None  # a job that succeeded has started
                latencies.append((view.started_at - view.created_at).total_seconds())
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        service.close()
    print(
        f"{label:<10} submit -> running: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} jobs (target < 2000 ms)"
    )
    return latencies


def redis_available() -> bool:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.flushdb()
        return True
    except Exception as error:
        print(f"redis skipped ({type(error).__name__})")
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    models = builtin_models_dir()

    with tempfile.TemporaryDirectory() as tmp:
        print("== metrics fetch: 10,000 steps x 15 metrics")
        bench_metrics("sqlite", f"sqlite:///{tmp}/bench.db", args.reps)
        database = postgres_database()
        if database is not None:
            admin, name = database
            try:
                bench_metrics("postgresql", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", args.reps)
            finally:
                admin.execute(database_statement("DROP DATABASE IF EXISTS {} WITH (FORCE)", name))

        print("== submit -> running latency (one worker, tiny digits-even jobs)")
        data = Path(tmp) / "data"
        data.mkdir()
        if models.is_dir():
            os.symlink(models, data / "models")  # reuse the built-in models instead of rebuilding them
        bench_latency("embedded", Settings(data_dir=data, database_url="", broker_url=""), args.jobs)
        if redis_available():
            redis_data = Path(tmp) / "redis-data"
            redis_data.mkdir()
            if models.is_dir():
                os.symlink(models, redis_data / "models")
            bench_latency("redis", Settings(data_dir=redis_data, database_url="", broker_url=REDIS_URL), args.jobs)


if __name__ == "__main__":
    main()
