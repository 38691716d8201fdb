"""A user reward ('tests.worker.rank_faults:kill_rank_one') that SIGKILLs rank 1 of a multi-process job on its
``after_calls``-th call, once (a marker file remembers it), as an out-of-memory kill would."""

import os
import signal
from pathlib import Path

CALLS = {"count": 0}


def kill_rank_one(images, prompts, marker: str, after_calls: int = 3, **_columns):
    if os.environ.get("RANK") == "1":
        CALLS["count"] += 1
        if CALLS["count"] >= after_calls and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
    return [0.0] * len(prompts)
