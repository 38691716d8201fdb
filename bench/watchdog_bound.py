"""How long after the last heartbeat a live worker's watchdog re-queues a dead worker's job and comparison
(docs/security.md). Run from the repository root: python bench/watchdog_bound.py"""

import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from worker.db import Store, upgrade
from worker.lifecycle import Heartbeat
from worker.models import Comparison, Job, utcnow

d = Path(tempfile.mkdtemp())
url = f"sqlite:///{d / 's.db'}"
upgrade(url)
store = Store(url)
for interval, timeout in ((1.0, 5.0), (0.5, 10.0)):
    with store.session() as s:
        s.query(Job).delete()
        s.query(Comparison).delete()
        s.add(
            Job(
                id="j1",
                name="x",
                kind="flow",
                algorithm="adrpo",
                config={},
                status="running",
                total_steps=1,
                worker="dead:1",
                heartbeat_at=utcnow(),
            )
        )
        s.flush()
        s.add(
            Comparison(
                id="c1", job_id="j1", prompt="p", seed=0, status="running", worker="dead:1", heartbeat_at=utcnow()
            )
        )
    t0 = time.monotonic()
    got = {}
    done = threading.Event()

    def mark(kind):
        def f(_id):
            got[kind] = time.monotonic() - t0
            if len(got) == 2:
                done.set()

        return f

    hb = Heartbeat(
        store, interval, timeout, d, enqueue=mark("job"), enqueue_comparison=mark("comparison"), worker="me:2"
    )
    hb.start()
    done.wait(60)
    hb.stop()
    hb.join(5)
    print(
        f"interval {interval} s, timeout {timeout} s: last stamp -> re-queued job {got['job']:.2f} s, comparison {got['comparison']:.2f} s"
    )
