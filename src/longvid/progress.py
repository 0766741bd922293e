"""Progress reporting, in one place: every long loop in longvid takes ``progress`` and asks
``bar`` for something with tqdm's ``update``/``close``.

``progress`` is False (silent), True (a tqdm bar on stderr) or a callable
``(stage, done, total)`` (how the web page and callers that draw their own bars listen).
"""

from __future__ import annotations

from collections.abc import Callable

Progress = bool | Callable[[str, int, int], None]


class CallbackBar:
    """The part of tqdm's interface longvid uses, reporting (stage, done, total) to a callback."""

    def __init__(self, callback: Callable[[str, int, int], None], total: int, desc: str, initial: int = 0) -> None:
        self.callback, self.total, self.desc, self.n = callback, total, desc, initial
        callback(desc, initial, total)

    def update(self, k: int = 1) -> None:
        self.n += k
        self.callback(self.desc, self.n, self.total)

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def bar(progress: Progress, total: int, desc: str, unit: str = "it", initial: int = 0, leave: bool = False):
    """A tqdm bar (``progress=True``), a callback reporter (a callable), or a silent bar."""
    if callable(progress):
        return CallbackBar(progress, total, desc, initial)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not progress, leave=leave)
