"""User rewards ('tests.worker.failing_rewards:NAME') that break a run in the ways real runs break, to test
that the job fails with a readable reason and keeps its last good checkpoint."""

import torch

CALLS = {"count": 0}
GOOD_CALLS = 4


def _good_then(failure):
    def reward(images, prompts, **_columns):
        CALLS["count"] += 1
        if CALLS["count"] <= GOOD_CALLS:
            return [0.5] * len(prompts)
        return failure(prompts)

    return reward


nan_after_a_few = _good_then(lambda prompts: [float("nan")] * len(prompts))


def _out_of_memory(prompts):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


oom_after_a_few = _good_then(_out_of_memory)
