"""A reward computed by an HTTP server: how flow_grpo and Flow-Factory run rewards whose dependencies
clash with the trainer's (an old torch, another transformers, a GPU of its own).

The reward's name is the URL: ``remote:http://host:port/path`` or plainly ``http://...`` / ``https://...``.
Each call POSTs one JSON body per batch (``batch_size`` samples, default all)::

    {"kind": "text", "prompts": [...], "completions": [...], "columns": {"answer": [...], ...}}
    {"kind": "image", "prompts": [...], "images": ["<base64 PNG>", ...], "columns": {...}}

and expects ``{"scores": [s_1, ..., s_n]}`` (or a bare list): one finite number per sample, in order.
A time-out, a refused connection, an HTTP error status, a body that is not JSON, a wrong number of
scores or a score that is not a finite number ends the job with a message naming the URL: a reward is
never silently zero.
"""

from __future__ import annotations

import base64
import io
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pydantic import Field

from ..config import ConfigError
from ..trainers.base import TrainingError
from . import RewardOptions, register_reward

PREFIX = "remote:"
SCHEMES = ("http", "https")
MAX_ERROR_BODY = 300


class RemoteRewardError(TrainingError):
    """The reward server did not give one finite score per sample; the message names the URL."""


def is_remote(name: str) -> bool:
    """Whether a reward name is a remote reward (``remote:URL``, ``http://...``, ``https://...``)."""
    return name.startswith((PREFIX, "http://", "https://"))


def remote_url(name: str) -> str:
    """The URL of a remote reward name, checked: http(s), a host, no credentials in it."""
    url = name.removeprefix(PREFIX)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConfigError(f"rewards: {name!r} is not a remote reward URL (expected remote:http://host:port/path)")
    if parts.username or parts.password:
        raise ConfigError(f"rewards: {name!r}: no credentials in the URL (the config is stored and shown)")
    return url


def remote_host(name: str) -> str:
    """``host:port`` of a remote reward (port filled in from the scheme): what an operator allowlist names."""
    parts = urllib.parse.urlsplit(remote_url(name))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def png_base64(image) -> str:
    """A ``(C, H, W)`` float tensor in [0, 1] as a base64 PNG (RGB, or L for one channel)."""
    from PIL import Image

    array = (image.detach().float().clamp(0, 1) * 255).round().to("cpu").byte()
    array = array[0] if array.shape[0] == 1 else array[:3].permute(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(array.numpy()).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


class RemoteReward:
    """The callable of one remote reward; ``kind`` is the job's ("text" or "image")."""

    def __init__(self, name: str, kind: str, timeout: float = 60.0, batch_size: int | None = None) -> None:
        self.url = remote_url(name)
        self.kind = kind
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 3600:
            raise ConfigError(
                f"rewards: {name!r} option timeout must be a number of seconds in (0, 3600] (got {timeout!r})"
            )
        if batch_size is not None and (
            not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
        ):
            raise ConfigError(f"rewards: {name!r} option batch_size must be a positive integer (got {batch_size!r})")
        self.timeout = float(timeout)
        self.batch_size = batch_size

    def __call__(self, first: Any, second: Any, **columns: Any) -> list[float]:
        if self.kind == "text":
            prompts, samples = list(first), list(second)
        else:  # image rewards are called as fn(images, prompts, **columns)
            samples, prompts = first, list(second)
        count = len(prompts)
        if len(samples) != count:
            raise RemoteRewardError(f"remote reward {self.url}: {len(samples)} samples but {count} prompts")
        size = self.batch_size or max(count, 1)
        scores: list[float] = []
        for start in range(0, count, size):
            part = slice(start, min(start + size, count))
            scores += self._score_batch(prompts[part], samples[part], {k: list(v)[part] for k, v in columns.items()})
        return scores

    def _score_batch(self, prompts: list[str], samples: Any, columns: dict[str, list]) -> list[float]:
        body: dict[str, Any] = {
            "kind": self.kind,
            "prompts": prompts,
            "columns": {k: [_jsonable(v) for v in values] for k, values in columns.items()},
        }
        if self.kind == "text":
            body["completions"] = list(samples)
        else:
            body["images"] = [png_base64(image) for image in samples]
        return self._parse(self._post(json.dumps(body).encode()), len(prompts))

    def _post(self, data: bytes) -> bytes:
        request = urllib.request.Request(
            self.url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout
            ) as response:  # http(s) only: remote_url checked the scheme
                return response.read()
        except urllib.error.HTTPError as error:
            detail = error.read()[:MAX_ERROR_BODY].decode(errors="replace").strip()
            raise RemoteRewardError(
                f"remote reward {self.url}: HTTP {error.code} {error.reason}" + (f": {detail}" if detail else "")
            ) from None
        except TimeoutError:
            raise RemoteRewardError(
                f"remote reward {self.url}: no answer within {self.timeout:g} s (option timeout)"
            ) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise RemoteRewardError(
                    f"remote reward {self.url}: no answer within {self.timeout:g} s (option timeout)"
                ) from None
            raise RemoteRewardError(f"remote reward {self.url}: cannot connect ({error.reason})") from None
        except (ConnectionError, OSError) as error:
            raise RemoteRewardError(f"remote reward {self.url}: connection failed ({error})") from None

    def _parse(self, raw: bytes, expected: int) -> list[float]:
        try:
            answer = json.loads(raw)
        except ValueError:
            shown = raw[:80].decode(errors="replace")
            raise RemoteRewardError(f"remote reward {self.url}: the answer is not JSON ({shown!r})") from None
        scores = answer.get("scores") if isinstance(answer, dict) else answer
        if not isinstance(scores, list):
            raise RemoteRewardError(
                f'remote reward {self.url}: expected {{"scores": [...]}} or a list, got {type(answer).__name__}'
            )
        if len(scores) != expected:
            raise RemoteRewardError(f"remote reward {self.url}: {len(scores)} scores for {expected} samples")
        for index, score in enumerate(scores):
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise RemoteRewardError(f"remote reward {self.url}: score {index} is {score!r}, not a finite number")
        return [float(score) for score in scores]


def remote_reward(name: str, kind: str, **options: Any) -> RemoteReward:
    try:
        return RemoteReward(name, kind, **options)
    except TypeError as error:
        raise ConfigError(f"rewards: bad options for {name!r}: {error} (options: timeout, batch_size)") from None


class RemoteOptions(RewardOptions):
    timeout: float = Field(default=60.0, gt=0.0, le=3600.0, description="Seconds to wait for the server's answer.")
    batch_size: int | None = Field(
        default=None, ge=1, le=100_000, description="Samples per request; empty: all at once."
    )


@register_reward(
    "remote:URL",
    "any",
    "An HTTP reward server: POST prompts + completions (or base64 PNGs) + columns as JSON, one score per sample back.",
    needs="remote",
    options=RemoteOptions,
)
def _listed_only(**_: Any) -> RemoteReward:  # the entry `adrpo rewards` shows; real names are URLs
    raise ConfigError("rewards: give the server's URL as the name, e.g. remote:http://127.0.0.1:8000/score")
