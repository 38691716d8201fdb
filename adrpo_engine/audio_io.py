"""Audio clips for audio-language jobs: decoding, mono mix-down, resampling and the checks a clip must pass.

A clip reaches the engine as one of:

- a ``datasets`` Audio value: ``{"array": ..., "sampling_rate": ...}`` (decoded) or ``{"path": ...,
  "bytes": ...}`` (``Audio(decode=False)``, which is how :mod:`adrpo_engine.data` reads audio columns, so
  no audio backend of ``datasets`` is needed);
- a file path (JSONL rows, inline entries, uploads): WAV is read with scipy (always installed); FLAC, OGG
  and other formats with ``soundfile`` when it is installed;
- a numpy array, taken to be at the target rate already.

:func:`load_clip` returns float32 mono at the feature extractor's rate (polyphase resampling,
``scipy.signal.resample_poly``), and raises :class:`ConfigError` for a clip that is empty, not finite,
longer than the job's limit or in a format nothing here can read.
"""

from __future__ import annotations

import io
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

WAV_SUFFIXES = {".wav", ".wave"}
SOUNDFILE_SUFFIXES = {".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".mp3"}
AUDIO_SUFFIXES = WAV_SUFFIXES | SOUNDFILE_SUFFIXES
MIN_RATE, MAX_RATE = 1_000, 192_000


def _to_float(data: np.ndarray) -> np.ndarray:
    """PCM integers to [-1, 1] floats; floats unchanged."""
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        if info.min == 0:  # 8-bit WAV is unsigned
            return (data.astype(np.float32) - (info.max + 1) / 2) / ((info.max + 1) / 2)
        return data.astype(np.float32) / float(max(-info.min, info.max))
    return data.astype(np.float32)


def read_audio_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """``(samples (frames,) or (frames, channels), sampling_rate)`` of an encoded file's bytes."""
    suffix = Path(name).suffix.lower()
    if suffix in WAV_SUFFIXES or data[:4] == b"RIFF":
        from scipy.io import wavfile

        try:
            rate, samples = wavfile.read(io.BytesIO(data))
        except (ValueError, EOFError) as error:
            raise ConfigError(f"audio: {name!r} is not a readable WAV file ({error})") from None
        return _to_float(np.asarray(samples)), int(rate)
    try:
        import soundfile  # pyright: ignore[reportMissingImports] (optional: FLAC/OGG/MP3 clips)
    except ImportError:
        raise ConfigError(
            f"audio: {name!r}: only WAV files can be read without the soundfile package "
            f"(pip install soundfile for {', '.join(sorted(SOUNDFILE_SUFFIXES))})"
        ) from None
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except Exception as error:  # soundfile raises its own LibsndfileError and RuntimeError
        raise ConfigError(f"audio: {name!r} is not a readable audio file ({error})") from None
    return np.asarray(samples, dtype=np.float32), int(rate)


def read_audio_file(path: str | Path) -> tuple[np.ndarray, int]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"audio: {str(path)!r} does not exist")
    return read_audio_bytes(path.read_bytes(), path.name)


def mono(samples: np.ndarray) -> np.ndarray:
    """Channels averaged: ``(frames,)``. Arrays shaped ``(channels, frames)`` (few rows) are accepted too."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ConfigError(f"audio: a clip must be 1-D or 2-D (got shape {samples.shape})")
    channels_first = samples.shape[0] < samples.shape[1] and samples.shape[0] <= 8
    return samples.mean(axis=0 if channels_first else 1)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples
    from scipy.signal import resample_poly

    common = gcd(rate, target)
    return resample_poly(samples, target // common, rate // common).astype(np.float32)


def decode_clip(value: Any, target_rate: int, base_dir: Path | None = None) -> tuple[np.ndarray, int]:
    """The samples and original rate of any accepted clip value (see the module docstring)."""
    if isinstance(value, dict):
        if value.get("array") is not None:
            return np.asarray(value["array"]), int(value.get("sampling_rate") or target_rate)
        if value.get("bytes"):
            return read_audio_bytes(value["bytes"], str(value.get("path") or "clip.wav"))
        if value.get("path"):
            return decode_clip(str(value["path"]), target_rate, base_dir)
        raise ConfigError("audio: an audio value needs 'array', 'bytes' or 'path'")
    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return read_audio_file(path)
    if isinstance(value, np.ndarray) or isinstance(value, list):
        return np.asarray(value, dtype=np.float32), target_rate
    raise ConfigError(f"audio: cannot read a clip from a {type(value).__name__}")


def check_clip(samples: np.ndarray, rate: int, max_seconds: float, name: str = "clip") -> None:
    """The checks every clip passes at submission and at load: a rate, samples, finite, within the limit."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ConfigError(f"audio: {name}: sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
    if samples.size == 0:
        raise ConfigError(f"audio: {name} is empty")
    if not np.isfinite(samples).all():
        raise ConfigError(f"audio: {name} holds non-finite samples (NaN or inf)")
    seconds = samples.shape[0] / rate if samples.ndim == 1 else max(samples.shape) / rate
    if seconds > max_seconds:
        raise ConfigError(f"audio: {name} is {seconds:.1f} s long; the limit is {max_seconds:g} s (audio.max_seconds)")


def load_clip(value: Any, target_rate: int, max_seconds: float, base_dir: Path | None = None) -> np.ndarray:
    """Float32 mono samples at ``target_rate``, checked (:func:`check_clip`)."""
    samples, rate = decode_clip(value, target_rate, base_dir)
    name = (
        str(value)
        if isinstance(value, (str, Path))
        else str(value.get("path") or "clip")
        if isinstance(value, dict)
        else "clip"
    )
    samples = mono(samples)
    check_clip(samples, rate, max_seconds, name)
    return resample(samples, rate, target_rate)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM WAV (what browsers play) of float samples in [-1, 1]."""
    from scipy.io import wavfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)
    wavfile.write(path, rate, pcm)
    return path


def check_inline_clips(config) -> None:
    """Every clip of ``prompts.rows`` (``audio.column``) decodes, and passes :func:`check_clip` with the job's
    ``audio.max_seconds``: the job service's submission check (``KindSpec.input_check``). Dataset and
    built-in rows are read on the worker."""
    column, limit = config.audio.column, config.audio.max_seconds
    for index, row in enumerate(config.prompts.rows):
        where = f"prompts.rows.{index}.{column}"
        if column not in row:
            raise ConfigError(f"{where}: the row has no {column!r} column (audio.column)")
        value = row[column]
        try:
            samples, rate = decode_clip(value, MIN_RATE)
            check_clip(mono(samples), rate, limit, Path(value).name if isinstance(value, str) else "clip")
        except ConfigError as error:
            raise ConfigError(f"{where}: {str(error).removeprefix('audio: ')}") from None
