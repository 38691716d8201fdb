"""Clips: WAV decoding, mono mix-down, resampling to the feature extractor's rate, and the checks."""

import io

import numpy as np
import pytest
from scipy.io import wavfile

from adrpo_engine.audio_io import check_clip, load_clip, read_audio_bytes, write_wav
from adrpo_engine.config import ConfigError


def tone(rate, seconds=0.5, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(samples, rate):
    buffer = io.BytesIO()
    wavfile.write(buffer, rate, samples)
    return buffer.getvalue()


def test_int16_stereo_wav_is_mixed_down_and_resampled(tmp_path):
    left = tone(44_100)
    stereo = (np.stack([left, left], axis=1) * 32767).astype(np.int16)
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(stereo, 44_100))
    clip = load_clip(str(path), 16_000, max_seconds=5)
    assert clip.dtype == np.float32 and clip.ndim == 1
    assert abs(len(clip) - 8_000) <= 1
    # the tone survives resampling: its spectrum peaks at 440 Hz
    spectrum = np.abs(np.fft.rfft(clip))
    assert abs(np.argmax(spectrum) * 16_000 / len(clip) - 440) < 5


def test_datasets_values_and_relative_paths(tmp_path):
    write_wav(tmp_path / "a.wav", tone(16_000), 16_000)
    assert len(load_clip({"path": "x.wav", "bytes": (tmp_path / "a.wav").read_bytes()}, 16_000, 5)) == 8_000
    assert len(load_clip({"array": tone(8_000), "sampling_rate": 8_000}, 16_000, 5)) == 8_000
    assert len(load_clip("a.wav", 16_000, 5, base_dir=tmp_path)) == 8_000


def test_write_then_read_round_trips_to_16_bit():
    samples, rate = tone(16_000), 16_000
    buffer = io.BytesIO()
    wavfile.write(buffer, rate, (samples * 32767).astype(np.int16))
    back, back_rate = read_audio_bytes(buffer.getvalue(), "x.wav")
    assert back_rate == rate and np.max(np.abs(back - samples)) < 1e-3


def test_bad_clips_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="is 3.0 s long; the limit is 2 s"):
        load_clip({"array": np.zeros(48_000), "sampling_rate": 16_000}, 16_000, max_seconds=2)
    with pytest.raises(ConfigError, match="is empty"):
        check_clip(np.zeros(0), 16_000, 5)
    with pytest.raises(ConfigError, match="non-finite"):
        check_clip(np.array([0.0, np.nan]), 16_000, 5)
    with pytest.raises(ConfigError, match="sample rate 100 Hz"):
        check_clip(np.zeros(10), 100, 5)
    with pytest.raises(ConfigError, match="does not exist"):
        load_clip(str(tmp_path / "missing.wav"), 16_000, 5)
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ConfigError, match="not a readable WAV"):
        load_clip(str(tmp_path / "bad.wav"), 16_000, 5)
