"""The embedded broker's transport: kombu's filesystem transport with messages written atomically.

kombu 5.7's filesystem transport creates the message file under its final name and then writes it; a
consumer that lists the folder in between moves the still-empty file away, reads ``b""`` and the
worker dies on ``JSONDecodeError`` with the message lost (seen in the studio: a job launched right
after a reward dry run stayed queued). Here the producer writes ``.<name>.part`` (a name no queue
reads) and renames it into place, so a consumer sees whole messages or none. ``filesystem://`` URLs
resolve to this transport once ``worker.celery_app`` is imported (``install``).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

ALIAS = "filesystem"
TARGET = "worker.broker:Transport"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` onto ``queue``: written under a hidden name, then renamed (atomic on POSIX)."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb", buffering=0) as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make ``filesystem://`` mean this transport in this process."""
    TRANSPORT_ALIASES[ALIAS] = TARGET
