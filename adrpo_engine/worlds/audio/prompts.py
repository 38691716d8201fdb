"""Built-in prompt sources of the audio world (registered in ``adrpo_engine.kinds``): rows with the prompt
(question and lettered options), the clip (``audio``: a ``datasets`` Audio dict), ``answer``, ``choices``
and ``task``. Seeds are disjoint from pre-training's (``0 .. recipe.pretrain_seeds - 1``) and from each other.
"""

from __future__ import annotations

from . import signals

TRAIN_SEEDS = range(100_000, 100_128)  # x 4 tasks = 512 rows
HELDOUT_SEEDS = range(200_000, 200_032)  # x 4 tasks = 128 rows


def audio_tones() -> list[dict]:
    return [question.row() for question in signals.questions(TRAIN_SEEDS)]


def audio_tones_heldout() -> list[dict]:
    return [question.row() for question in signals.questions(HELDOUT_SEEDS)]
