"""Reading what an offline W&B run wrote: its transaction log RUN_DIR/wandb/offline-run-*/run-ID.wandb.

The file is a ``:W&B`` header (4 bytes, then a 2-byte magic and a version byte) followed by LevelDB
log-format records (32 KiB blocks; each fragment a 7-byte header: crc32c, length, type FULL/FIRST/
MIDDLE/LAST), each record a ``wandb_internal_pb2.Record`` protobuf. wandb 0.31 has no reader of its
own in Python (its Go core writes the file), so the tests read it back with this one."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
FRAGMENT_HEADER = 7
FILE_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> Iterator[bytes]:
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log")
    position, pending = FILE_HEADER, b""
    while position + FRAGMENT_HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < FRAGMENT_HEADER:  # block trailer: padding
            position += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + FRAGMENT_HEADER])
        if length == 0 and kind == 0:
            return
        chunk = data[position + FRAGMENT_HEADER : position + FRAGMENT_HEADER + length]
        position += FRAGMENT_HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def read_run(log_file: Path, wait_s: float = 60.0) -> dict[str, Any]:
    """The run record's id, project and config, every history row (key -> value) and the exit code.

    W&B's core process closes the log a moment after ``run.finish()`` returns (it was seen half written
    right after): the file is read again until its exit record is there, for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        found = _parse(log_file)
        if found["exit_code"] is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _parse(log_file: Path) -> dict[str, Any]:
    from wandb.proto import wandb_internal_pb2

    found: dict[str, Any] = {"history": [], "config": {}, "exit_code": None}
    for payload in _payloads(log_file.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found["id"], found["project"], found["name"] = (
                record.run.run_id,
                record.run.project,
                record.run.display_name,
            )
            found["config"].update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            found["config"].update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            found["history"].append(
                {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in record.history.item}
            )
        elif kind == "exit":
            found["exit_code"] = record.exit.exit_code
    return found
