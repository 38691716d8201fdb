"""A user reward ('tests.worker.nan_reward:reward') that turns non-finite after a few calls, to test the
failure path: the job must fail with a readable reason and keep its last good checkpoint."""

CALLS = {"count": 0}
GOOD_CALLS = 4


def reward(images, prompts, **_columns):
    CALLS["count"] += 1
    value = 0.5 if CALLS["count"] <= GOOD_CALLS else float("nan")
    return [value] * len(prompts)
