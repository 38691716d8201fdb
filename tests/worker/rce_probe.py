"""A 'user reward' module whose import leaves a mark: the tests assert it is never imported when the
policy refuses it (the import itself is where code would run)."""

import os
from pathlib import Path

_marker = os.environ.get("ADRPO_RCE_PROBE")
if _marker:
    Path(_marker).write_text("imported")


def reward(images, prompts, **_columns):
    return [0.0] * len(prompts)
