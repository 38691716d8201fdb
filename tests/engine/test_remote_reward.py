"""The remote reward against a real HTTP server on 127.0.0.1, started by the test."""

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import torch
from typer.testing import CliRunner

from adrpo_engine.cli import app
from adrpo_engine.config import ConfigError, RewardSpec
from adrpo_engine.rewards import WeightedRewards, available_rewards
from adrpo_engine.rewards.remote import RemoteRewardError, remote_host


class RewardServer(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _answer(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # /slow: the client timed out and hung up, as meant
            pass

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        RewardServer.received.append(payload)
        if self.path == "/score":
            if payload["kind"] == "text":  # completion length in characters, plus the row's 'bonus' column
                bonus = payload["columns"].get("bonus", [0] * len(payload["prompts"]))
                scores = [len(c) + b for c, b in zip(payload["completions"], bonus)]
            else:  # mean pixel value of each PNG
                from PIL import Image

                scores = []
                for encoded in payload["images"]:
                    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
                    scores.append(sum(image.convert("L").getdata()) / (255 * image.width * image.height))
            return self._answer(200, json.dumps({"scores": scores}).encode())
        if self.path == "/list":
            return self._answer(200, json.dumps([1.0] * len(payload["prompts"])).encode())
        if self.path == "/short":
            return self._answer(200, json.dumps({"scores": [1.0]}).encode())
        if self.path == "/nan":
            return self._answer(200, b'{"scores": [NaN, 1.0]}')
        if self.path == "/null":
            return self._answer(200, json.dumps({"scores": [None, 1.0]}).encode())
        if self.path == "/notjson":
            return self._answer(200, b"<html>oops</html>")
        if self.path == "/slow":
            time.sleep(2.0)
            return self._answer(200, json.dumps({"scores": [0.0] * len(payload["prompts"])}).encode())
        return self._answer(500, b"reward model crashed: CUDA out of memory")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RewardServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def rewards(name, kind="text", **options):
    return WeightedRewards([RewardSpec(name=name, options=options)], kind)


def test_text_scores_come_back_in_order_with_the_columns(server):
    RewardServer.received.clear()
    total, _ = rewards(f"remote:{server}/score", batch_size=2)(["p", "q", "r"], ["ab", "abcd", ""], bonus=[10, 20, 30])
    assert total.tolist() == [12.0, 24.0, 30.0]
    assert [len(body["prompts"]) for body in RewardServer.received] == [2, 1]  # batch_size splits requests
    assert RewardServer.received[0]["columns"] == {"bonus": [10, 20]}
    total, _ = rewards(f"{server}/list")(["p", "q"], ["a", "b"])  # a bare http:// URL and a bare list answer
    assert total.tolist() == [1.0, 1.0]


def test_images_travel_as_png(server):
    images = torch.zeros(2, 3, 8, 8)
    images[1] = 1.0
    total, _ = rewards(f"remote:{server}/score", kind="image")(images, ["a", "b"])
    assert total.tolist() == pytest.approx([0.0, 1.0])
    assert RewardServer.received[-1]["kind"] == "image" and len(RewardServer.received[-1]["images"]) == 2


@pytest.mark.parametrize("path, message", [
    ("/error", "HTTP 500 Internal Server Error: reward model crashed"),
    ("/short", "1 scores for 2 samples"),
    ("/nan", "score 0 is nan, not a finite number"),
    ("/null", "score 0 is None"),
    ("/notjson", "not JSON"),
])
def test_bad_answers_end_the_job_with_a_readable_error(server, path, message):
    with pytest.raises(RemoteRewardError, match=message) as caught:
        rewards(f"remote:{server}{path}")(["p", "q"], ["a", "b"])
    assert f"{server}{path}" in str(caught.value)


def test_timeout_and_refused_connection(server):
    with pytest.raises(RemoteRewardError, match="no answer within 0.3 s"):
        rewards(f"remote:{server}/slow", timeout=0.3)(["p", "q"], ["a", "b"])
    with pytest.raises(RemoteRewardError, match="cannot connect"):
        rewards("remote:http://127.0.0.1:9/score", timeout=2)(["p"], ["a"])


def test_bad_names_and_options_are_config_errors():
    for name in ("remote:ftp://x/y", "remote:nothing", "remote:http://user:pw@host/x"):
        with pytest.raises(ConfigError, match="rewards"):
            rewards(name)
    with pytest.raises(ConfigError, match="timeout"):
        rewards("remote:http://127.0.0.1:1/x", timeout=0)
    with pytest.raises(ConfigError, match="options"):
        rewards("remote:http://127.0.0.1:1/x", token="secret")
    assert remote_host("https://Example.org/score") == "example.org:443"
    listed = {reward.name: reward for reward in available_rewards("image")}
    assert "remote:URL" in listed and "timeout" in listed["remote:URL"].options_text()
    assert "remote:URL" in {reward.name for reward in available_rewards("text")}


def test_tiny_lm_trains_on_a_remote_reward_and_fails_readably(server, tmp_path):
    base = ["train", "--preset", "tiny-lm", "--set", "steps=1", "--set", "prompts_per_step=2",
            "--set", "group_size=4", "--set", "sample_every=1000", "--set", "llm.max_new_tokens=8"]
    result = CliRunner().invoke(app, base + ["--set", f'rewards=[{{name: "remote:{server}/score"}}]',
                                             "--out", str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "ok" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["reward/mean"] > 0  # completion lengths, as the server scores them
    result = CliRunner().invoke(app, base + ["--set", f'rewards=[{{name: "remote:{server}/error"}}]',
                                             "--out", str(tmp_path / "bad")])
    assert result.exit_code == 1 and "HTTP 500" in result.output, result.output
