"""Uploaded videos: streamed to random names in the server's own folder under a hard size
cap, kept until their question comes (at most ``UPLOAD_TTL`` seconds), used once, deleted."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from longvid.errors import LongvidError
from longvid.web.errors import BadRequest, Gone, InsufficientStorage, PayloadTooLarge, TooManyRequests

UPLOAD_TTL = 600  # seconds an upload waits for its question
MAX_HELD = 16  # uploads waiting for their question at once


@dataclass(frozen=True)
class Upload:
    path: Path
    name: str  # the client's file name, for display only
    created: float
    warnings: tuple[str, ...] = ()  # what reading it found (a truncated file, frames that fail)


class Uploads:
    """``max_bytes``: one upload's cap; ``max_total_bytes``: what all uploads held and arriving
    may take together (default four uploads' worth); at most ``MAX_HELD`` held at once."""

    def __init__(self, max_bytes: int, max_total_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes or 4 * max_bytes
        self.folder = Path(tempfile.mkdtemp(prefix="longvid-serve-"))
        self.held: dict[str, Upload] = {}
        self.arriving = 0  # bytes of uploads still streaming in

    def sweep(self) -> None:
        """Delete uploads nobody asked about within UPLOAD_TTL seconds."""
        now = time.time()
        for key, up in list(self.held.items()):
            if now - up.created > UPLOAD_TTL:
                up.path.unlink(missing_ok=True)
                self.held.pop(key, None)

    def check_length(self, declared: str | None) -> None:
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(f"upload too large: the limit is {self.max_bytes / 2**20:g} MB")

    async def store(self, body: AsyncIterator[bytes], name: str) -> tuple[str, Upload, object]:
        """Stream ``body`` to disk, enforcing the cap as it comes; returns (key, upload, the
        video's probe). Anything that is not a readable video is deleted."""
        from longvid.video.container import frame_index, probe, truncation

        self.sweep()
        if len(self.held) >= MAX_HELD:
            raise TooManyRequests(f"{MAX_HELD} uploads are waiting for their questions; ask about one, or retry later")
        key = uuid.uuid4().hex
        path = self.folder / f"{key}.video"  # the client's file name is never part of a path
        size = 0
        try:
            with path.open("wb") as f:
                async for chunk in body:
                    size += len(chunk)
                    self.arriving += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(f"upload too large: the limit is {self.max_bytes / 2**20:g} MB")
                    if self.held_bytes() + self.arriving > self.max_total_bytes:
                        raise InsufficientStorage(
                            f"the server holds {self.max_total_bytes / 2**20:g} MB of uploads already; retry later"
                        )
                    f.write(chunk)
            if size == 0:
                raise BadRequest("the uploaded file is empty")
            try:
                info = probe(path, exact=True)  # every packet indexed: a truncated file shows
                note = truncation(name, frame_index(path))
            except LongvidError as e:
                raise BadRequest(f"not a video longvid can read ({str(e).replace(str(path), name)})") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            self.arriving -= size
        upload = Upload(path, name, time.time(), (note,) if note else ())
        self.held[key] = upload
        return key, upload, info

    def held_bytes(self) -> int:
        return sum(up.path.stat().st_size for up in self.held.values() if up.path.exists())

    def take(self, key: object) -> Upload:
        """The upload ``key`` names, handed over once (the caller deletes it after use)."""
        self.sweep()
        if not isinstance(key, str) or key not in self.held:
            raise Gone("that upload is gone (uploads are kept 10 minutes): upload it again")
        return self.held.pop(key)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
