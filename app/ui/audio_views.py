"""HTML views of audio samples (jobs of a kind whose samples are ``audio``): a player for the clip, the
question, and the answers with their rewards. Players point at ``/gradio_api/file=<clip>``, which the file
guard serves for WAV files under a job's ``samples/`` and ``comparisons/`` folders only."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from .common import round_reward


def file_url(path: str) -> str:
    return "/gradio_api/file=" + quote(path)


def player(path: str | None) -> str:
    if not path:
        return '<p class="audio-missing">clip not available</p>'
    return f'<audio class="audio-clip" controls preload="none" src="{html.escape(file_url(path))}"></audio>'


def _reward(value: float | None) -> str:
    shown = round_reward(value)
    return "—" if shown is None else f"{shown}"


def _rows(samples: list[dict[str, Any]]) -> str:
    cells = "".join(
        f"<tr><td>{html.escape(str(s['role']))}</td><td>{s['step']}</td>"
        f"<td class='audio-answer'>{html.escape(s.get('text') or '')}</td><td>{_reward(s.get('reward'))}</td></tr>"
        for s in samples
    )
    return f"<table><tr><th>model</th><th>step</th><th>answer</th><th>reward</th></tr>{cells}</table>"


def audio_samples_html(samples: list[dict[str, Any]], step: int | None) -> str:
    """One block per logged question: its clip, the question, the reference's answers and those at ``step``."""
    shown = [s for s in samples if s["role"] == "reference" or s["step"] == step]
    if not shown:
        return "<p>No samples yet.</p>"
    groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for sample in shown:
        groups.setdefault((sample["prompt"], sample.get("audio_path")), []).append(sample)
    blocks = [
        f"<div class='audio-sample'>{player(clip)}<p class='audio-question'>{html.escape(prompt)}</p>"
        f"{_rows(rows)}</div>"
        for (prompt, clip), rows in groups.items()
    ]
    return "<div class='audio-samples'>" + "".join(blocks) + "</div>"


def comparison_clip_html(samples: list[Any]) -> str:
    """The clip of an audio comparison, played once above the side-by-side answers."""
    clips = [s.audio_path for s in samples if getattr(s, "audio_path", None)]
    if not clips:
        return ""
    question = html.escape(samples[0].prompt)
    return f"<div class='audio-compare'>{player(clips[0])}<p class='audio-question'>{question}</p></div>"
