"""A stand-in for the Hugging Face hub on loopback, speaking the parts of its HTTP API that the project's
hub code relies on, as huggingface.co answers them: model info (``GET /api/models/<id>``: 200 for KNOWN,
404 with ``X-Error-Code: RepoNotFound`` otherwise), repository creation, the model card's metadata check,
the pre-upload check (every file uploaded inline, "regular") and the commit (NDJSON, base64 file contents),
whose files it keeps in
``FakeHub.commits``. This machine has no route to the real hub; huggingface_hub's own client talks to
this server through HF_ENDPOINT."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

KNOWN = "org/known-model"


@dataclass
class FakeHub:
    url: str
    created: list[dict] = field(default_factory=list)  # bodies of repository creations
    commits: list[dict[str, bytes]] = field(default_factory=list)  # path -> content, per commit
    authorizations: list[str] = field(default_factory=list)


class HubHandler(BaseHTTPRequestHandler):
    hub: FakeHub

    def _answer(self, status: int, payload: dict, error_code: str | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.startswith(f"/api/models/{KNOWN}"):
            self._answer(200, {"id": KNOWN, "modelId": KNOWN, "sha": "0" * 40, "siblings": []})
        else:
            self._answer(404, {"error": "Repository not found"}, "RepoNotFound")

    def do_POST(self):  # noqa: N802
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.hub.authorizations.append(self.headers.get("Authorization", ""))
        if self.path == "/api/repos/create":
            body = json.loads(data)
            self.hub.created.append(body)
            self._answer(200, {"url": f"{self.hub.url}/{body['organization']}/{body['name']}"})
        elif self.path == "/api/validate-yaml":  # the model card's metadata block
            self._answer(200, {"errors": [], "warnings": []})
        elif "/preupload/" in self.path:
            files = json.loads(data)["files"]
            self._answer(
                200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        elif "/commit/" in self.path:
            lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
            files = {
                line["value"]["path"]: base64.b64decode(line["value"]["content"])
                for line in lines
                if line["key"] == "file"
            }
            self.hub.commits.append(files)
            repo = self.path.split("/api/models/")[1].split("/commit/")[0]
            self._answer(200, {"commitUrl": f"{self.hub.url}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40})
        else:
            self._answer(404, {"error": "not served by the fake hub"})

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    hub = FakeHub(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = type("BoundHubHandler", (HubHandler,), {"hub": hub})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    yield hub
    server.shutdown()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"
