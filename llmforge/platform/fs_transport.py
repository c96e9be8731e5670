"""The embedded broker: kombu's ``filesystem://`` transport, made safe for several processes.

Kombu's own channel writes a message file in place and a consumer may move and
read it before the bytes are there, which kills the worker with a JSON error
and loses the message (seen in ``bench/jobs.py``; celery/kombu#1551). Here a
message is written under a hidden temporary name and renamed into the queue
folder (atomic on one filesystem), and a consumer claims a file by renaming it
into a private folder beside the queue (atomic, so two workers never take the
same message) before reading and deleting it. A message that still fails to
parse is set aside in ``broker/bad`` instead of crashing the worker; the job
table re-sends the job later anyway.
"""

from __future__ import annotations

import logging
import os
import uuid
from queue import Empty
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):  # noqa: ANN001, ANN003, ANN202 - kombu's signature
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        tmp = os.path.join(self.data_folder_out, f".{name}.tmp")  # '.'-prefixed: no consumer matches it
        try:
            with open(tmp, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.replace(tmp, final)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise filesystem.ChannelError(f"cannot add message {name!r} to {self.data_folder_out}") from exc

    def _get(self, queue):  # noqa: ANN001, ANN202
        suffix = f"{queue}.msg"
        claimed_dir = os.path.join(os.path.dirname(self.data_folder_in.rstrip("/")), "claimed")
        os.makedirs(claimed_dir, exist_ok=True)
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.startswith(".") or filename.partition(".")[2] != suffix:
                continue
            mine = os.path.join(claimed_dir, f"{os.getpid()}-{filename}")
            try:
                os.rename(os.path.join(self.data_folder_in, filename), mine)
            except OSError:
                continue  # another consumer took it
            try:
                with open(mine, "rb") as fh:
                    payload = fh.read()
                return loads(bytes_to_str(payload))
            except ValueError:
                bad = os.path.join(os.path.dirname(claimed_dir), "bad")
                os.makedirs(bad, exist_ok=True)
                os.replace(mine, os.path.join(bad, filename))
                log.error("unreadable broker message %s set aside in %s", filename, bad)
                continue
            finally:
                if os.path.exists(mine):
                    os.unlink(mine)
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
