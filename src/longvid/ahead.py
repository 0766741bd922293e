"""One item ahead: while the caller works on item k, item k+1 is made in a background thread
(decoding or writing a video: PyAV releases the GIL). Used by eval (the next video's frames)
and the probes' full mode (the next item's file). At most two items exist at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Ahead:
    """``get(k)`` returns ``make(keys[k])`` (its error raised there, for that item alone) and
    starts ``make(keys[k + 1])``. Items must be taken in order. ``make=None``: nothing is
    made ahead and ``get`` returns None."""

    def __init__(self, make: Callable[[Any], Any] | None, keys: Sequence, name: str = "longvid-ahead") -> None:
        self.make, self.keys, self.name = make, list(keys), name
        self.pool: ThreadPoolExecutor | None = None
        self.pending: dict[int, Future] = {}

    def __enter__(self) -> Ahead:
        if self.make is not None and self.keys:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
            self.pending[0] = self.pool.submit(self.make, self.keys[0])
        return self

    def get(self, k: int):
        if self.pool is None:
            return None
        if k + 1 < len(self.keys) and k + 1 not in self.pending:
            self.pending[k + 1] = self.pool.submit(self.make, self.keys[k + 1])
        return self.pending.pop(k).result()

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
