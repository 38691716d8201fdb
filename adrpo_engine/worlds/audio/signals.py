"""Synthetic clips and the multiple-choice questions whose answers follow from them (numpy only).

Every clip is a pure function of ``(task, seed)``: mono float32 at :data:`SAMPLE_RATE`, at most
:data:`MAX_SECONDS` long, built from sine tones (with short raised-cosine fades), beeps (short tones)
and white-noise bursts. Four tasks, each a question with fixed options in MMAU's style:

- ``count``: "How many beeps do you hear?" 1-4 beeps of one pitch at random times.
- ``pitch``: "Is the second tone higher than the first?" two tones whose frequencies differ by >= 2x.
- ``duration``: "Which tone is longer?" two tones of similar pitch whose lengths differ by >= 2.5x.
- ``noise``: "Is there noise in the clip?" one or two tones, with or without a noise burst.

The answer of each question is known by construction (``answer`` is the option's text), so the
multiple-choice reward's truth is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
MAX_SECONDS = 2.0
FADE_SECONDS = 0.01
BEEP_SECONDS = 0.12

TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "count": ("How many beeps do you hear?", ("1", "2", "3", "4")),
    "pitch": ("Is the second tone higher than the first?", ("yes", "no")),
    "duration": ("Which tone is longer?", ("the first", "the second")),
    "noise": ("Is there noise in the clip?", ("yes", "no")),
}
LETTERS = "ABCDEFGH"


@dataclass(frozen=True)
class Question:
    task: str
    seed: int
    audio: np.ndarray  # (samples,) float32 in [-1, 1] at SAMPLE_RATE
    question: str
    choices: tuple[str, ...]
    answer: str  # the correct option's text

    @property
    def prompt(self) -> str:
        """The question with its lettered options: ``How many beeps do you hear? (A) 1 (B) 2 ...``."""
        return format_question(self.question, self.choices)

    def row(self) -> dict:
        """A prompt row: prompt, audio (the ``datasets`` Audio dict), answer, choices, task."""
        return {
            "prompt": self.prompt,
            "audio": {"array": self.audio, "sampling_rate": SAMPLE_RATE},
            "answer": self.answer,
            "choices": list(self.choices),
            "task": self.task,
        }


def format_question(question: str, choices: tuple[str, ...] | list[str]) -> str:
    options = " ".join(f"({LETTERS[i]}) {choice}" for i, choice in enumerate(choices))
    return f"{question} {options}"


def _tone(freq: float, seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    fade = min(int(FADE_SECONDS * SAMPLE_RATE), len(wave) // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return wave


def _place(clip: np.ndarray, sound: np.ndarray, start: float) -> None:
    begin = int(start * SAMPLE_RATE)
    end = min(len(clip), begin + len(sound))
    clip[begin:end] += sound[: end - begin]


def _spread_starts(rng: np.random.Generator, lengths: list[float], total: float, gap: float) -> list[float]:
    """Start times for sounds of ``lengths`` in order, at least ``gap`` apart, within ``total`` seconds."""
    slack = total - sum(lengths) - gap * (len(lengths) + 1)
    cuts = np.sort(rng.uniform(0, max(slack, 0.0), len(lengths)))
    starts, position = [], gap
    previous_cut = 0.0
    for length, cut in zip(lengths, cuts):
        position += cut - previous_cut
        previous_cut = cut
        starts.append(position)
        position += length + gap
    return starts


def _count(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    clip = np.zeros(int(MAX_SECONDS * SAMPLE_RATE))
    beeps = int(rng.integers(1, 5))
    freq = rng.uniform(500, 1500)
    lengths = [BEEP_SECONDS] * beeps  # one length: the count is also the clip's total beep time
    for start, length in zip(_spread_starts(rng, lengths, MAX_SECONDS, 0.12), lengths):
        _place(clip, _tone(freq, length, rng.uniform(0.3, 0.8)), start)
    return clip, str(beeps)


def _pitch(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    clip = np.zeros(int(MAX_SECONDS * SAMPLE_RATE))
    low = rng.uniform(250, 600)
    high = low * rng.uniform(2.0, 3.0)
    higher = bool(rng.integers(0, 2))
    freqs = (low, high) if higher else (high, low)
    # the second tone is the longer one: which pitch dominates the clip tells the order
    lengths = [float(rng.uniform(0.15, 0.25)), float(rng.uniform(0.6, 0.9))]
    for start, length, freq in zip(_spread_starts(rng, lengths, MAX_SECONDS, 0.1), lengths, freqs):
        _place(clip, _tone(freq, length, rng.uniform(0.3, 0.8)), start)
    return clip, "yes" if higher else "no"


def _duration(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    clip = np.zeros(int(MAX_SECONDS * SAMPLE_RATE))
    short = rng.uniform(0.12, 0.25)
    long = short * rng.uniform(2.5, 3.5)
    second_longer = bool(rng.integers(0, 2))
    lengths = [short, long] if second_longer else [long, short]
    # the first tone is the low one: which band lasts longer tells the answer
    freqs = (rng.uniform(250, 450), rng.uniform(900, 1500))
    for start, length, freq in zip(_spread_starts(rng, lengths, MAX_SECONDS, 0.1), lengths, freqs):
        _place(clip, _tone(freq, length, rng.uniform(0.3, 0.8)), start)
    return clip, "the second" if second_longer else "the first"


def _noise(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    clip = np.zeros(int(MAX_SECONDS * SAMPLE_RATE))
    tones = int(rng.integers(1, 3))
    noisy = bool(rng.integers(0, 2))
    lengths = [float(rng.uniform(0.2, 0.5)) for _ in range(tones)]
    for start, length in zip(_spread_starts(rng, lengths, MAX_SECONDS, 0.1), lengths):
        _place(clip, _tone(rng.uniform(300, 1500), length, rng.uniform(0.3, 0.7)), start)
    if noisy:
        length = rng.uniform(0.2, 0.6)
        burst = rng.normal(0.0, rng.uniform(0.1, 0.3), int(length * SAMPLE_RATE))
        _place(clip, burst, rng.uniform(0.0, MAX_SECONDS - length))
    return clip, "yes" if noisy else "no"


_MAKERS = {"count": _count, "pitch": _pitch, "duration": _duration, "noise": _noise}


def make_question(task: str, seed: int) -> Question:
    """The clip and question of ``task`` for ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, list(TASKS).index(task)])
    clip, answer = _MAKERS[task](rng)
    clip = np.clip(clip, -1.0, 1.0).astype(np.float32)
    question, choices = TASKS[task]
    return Question(task, seed, clip, question, choices, answer)


def questions(seeds: range, tasks: tuple[str, ...] = tuple(TASKS)) -> list[Question]:
    """One question per (seed, task), tasks interleaved."""
    return [make_question(task, seed) for seed in seeds for task in tasks]
