"""The embedded broker writes each message whole: a consumer listing the queue folder never meets a
message file that is still being written (kombu's own transport opened it under its final name)."""

from __future__ import annotations

import os

from kombu import Connection

from worker import broker
from worker.celery_app import create_celery
from worker.settings import Settings


def test_filesystem_urls_resolve_to_the_atomic_transport(tmp_path):
    app = create_celery(Settings(data_dir=tmp_path, database_url="", broker_url=""))
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, broker.Transport)


def test_a_message_file_appears_only_when_whole(tmp_path, monkeypatch):
    folder = tmp_path / "queue"
    folder.mkdir()
    seen: list[list[str]] = []
    real_replace = os.replace

    def replace(source, target):
        # just before the rename: the queue has no file under a message name yet, the payload is written
        seen.append([name for name in os.listdir(folder) if name.endswith(".msg")])
        assert os.path.getsize(source) > 0
        real_replace(source, target)

    monkeypatch.setattr(broker.os, "replace", replace)
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    with Connection("filesystem://", transport_options=options) as connection:
        queue = connection.SimpleQueue("train")
        queue.put({"task": "x"})
        message = queue.get(timeout=2)
        assert message.payload == {"task": "x"}
        message.ack()
        queue.close()
    assert seen == [[]]
    assert not [name for name in os.listdir(folder) if name.endswith(".part")]
