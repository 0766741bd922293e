"""One request's options, as one value: ``AskOptions`` (frozen, checked once when built).

Every front end builds it (``VideoLLM.ask`` / ``chat`` keyword arguments, the CLI's flags, the
web API's JSON body, lmms-eval's ``model_args``, eval settings, probe sweeps) and passes it on;
the defaults live here alone, and so do the checks, each naming the field it refuses. The
report and an eval run's identity are derived from it (``identity``). Torch-free: the command
line and the web page read the fields and their defaults without loading a model.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from longvid.errors import InvalidRequestError
from longvid.extend.modes import (
    ANCHOR_MODES,
    DEFAULT_ANCHORS,
    EXTEND_MODES,
    KV_BITS,
    POOLING_MODES,
    REARRANGE_MODES,
    REDUCE_MODES,
)

# each field's choices (None: any value of its type within its range)
CHOICES: dict[str, tuple] = {
    "extend": tuple(EXTEND_MODES),
    "pooling": POOLING_MODES,
    "anchors": ANCHOR_MODES,
    "reduce": REDUCE_MODES,
    "kv_bits": KV_BITS,
    "rearrange": REARRANGE_MODES,
}
# fields whose value must be >= 1 when given
AT_LEAST_ONE = (
    "frames",
    "min_frames",
    "max_frames",
    "min_pixels",
    "max_pixels",
    "total_pixels",
    "visual_window",
    "group",
    "high",
    "low",
    "max_new_tokens",
    "chunk_frames",
    "prefill_chunk",
)


@dataclass(frozen=True)
class AskOptions:
    """How to answer: frames, extension, pooling and reduction, KV precision, generation.

    ``frames``: how many to sample uniformly (None: as many as the checkpoint was trained with,
    or all of given frames). Or qwen-vl-utils' budgets (``inference.sampling``): ``fps`` with
    ``min_frames`` / ``max_frames``, and ``min_pixels`` / ``max_pixels`` / ``total_pixels``
    (Qwen's resize rule); ``frames`` and ``fps`` together are refused. ``extend``: none |
    linear | ntk | dynamic | yarn | visual-yarn | visual-pi, against ``visual_window`` (W_v in
    tokens; None: the checkpoint's).
    ``pooling``: uniform (the family's own) | progressive (``group`` frames per anchor,
    strides ``high`` / ``low``, ``anchors`` change or fixed; None: change, fixed with
    ``rearrange``). ``reduce``: none | uniqueness | merge, keeping ``keep`` of the family's own
    visual tokens. ``kv_bits``: 16 | 8 | 4 | 2. ``kv_budget``: the most the KV cache holds of
    the video, in visual tokens per layer (``4096``) or bytes (``"512MiB"``), kept while the
    video streams in by dropping what repeats (``extend.kvbudget``; None: no bound).
    ``rearrange``: none | interleave | chunks (INTP). ``max_new_tokens``: the longest answer.
    ``chunk_frames``: frames encoded at once;
    ``prefill_chunk``: tokens per prefill pass (None: one cache block). ``fast_resize``:
    resize in the decoder (not the official processor's pixels).
    """

    frames: int | None = None
    fps: float | None = None
    min_frames: int | None = None
    max_frames: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    total_pixels: int | None = None
    extend: str = "none"
    visual_window: int | None = None
    pooling: str = "uniform"
    group: int = 4
    high: int | None = None
    low: int | None = None
    anchors: str | None = None
    reduce: str = "none"
    keep: float = 0.25
    kv_bits: int = 16
    kv_budget: int | str | None = None
    rearrange: str = "none"
    max_new_tokens: int = 32
    chunk_frames: int = 16
    prefill_chunk: int | None = None
    fast_resize: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            allowed = _field_types()[f.name]
            _check_type(f.name, value, allowed)
            if value is None:
                continue
            if not isinstance(value, bool | str):  # numpy scalars and the like, as Python numbers
                value = int(value) if int in allowed and isinstance(value, numbers.Integral) else float(value)
                object.__setattr__(self, f.name, value)
            if f.name in CHOICES and value not in CHOICES[f.name]:
                raise InvalidRequestError(
                    f"unknown {f.name} {value!r}; choose from {', '.join(map(str, CHOICES[f.name]))}"
                )
            if f.name in AT_LEAST_ONE and value < 1:
                raise InvalidRequestError(f"{f.name} must be >= 1 (got {value})")
        if self.frames is not None and self.fps is not None:
            raise InvalidRequestError("give frames or fps, not both")
        if (self.min_frames is not None or self.max_frames is not None) and self.fps is None:
            raise InvalidRequestError("min_frames and max_frames bound the frames fps samples: give fps too")
        if self.fps is not None and not self.fps > 0:
            raise InvalidRequestError(f"fps must be > 0 (got {self.fps})")
        for low, high in (("min_frames", "max_frames"), ("min_pixels", "max_pixels")):
            if (
                getattr(self, low) is not None
                and getattr(self, high) is not None
                and getattr(self, low) > getattr(self, high)
            ):
                raise InvalidRequestError(f"{low} must be <= {high} (got {getattr(self, low)} > {getattr(self, high)})")
        if self.kv_budget is not None:
            from longvid.extend.kvbudget import parse_kv_budget

            parse_kv_budget(self.kv_budget)  # refused in one line when malformed
        if not 0 < self.keep <= 1:
            raise InvalidRequestError(f"keep must be in (0, 1] (got {self.keep})")
        if self.reduce != "none" and self.pooling != "uniform":
            raise InvalidRequestError("reduce works on the family's own (uniform) pooling, not progressive")

    # ---------------------------------------------------------------- building

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], *, strings: bool = False, where: str = "") -> AskOptions:
        """From a mapping of field -> value (a JSON body, keyword arguments). Unknown keys and
        wrong types are refused in one line naming the field; ``strings``: values may be
        text to parse (``model_args``, query strings). None means the default."""
        if not isinstance(mapping, Mapping):
            raise InvalidRequestError(f"options{where} must be a mapping of name to value")
        known = cls.names()
        unknown = sorted(str(k) for k in mapping if k not in known)
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            raise InvalidRequestError(f"unknown option{plural}{where}: {', '.join(unknown)}; known: {', '.join(known)}")
        values = {}
        for name, value in mapping.items():
            if value is None:
                continue
            values[name] = _parse(name, value, _field_types()[name]) if strings and isinstance(value, str) else value
        return cls(**values)

    @classmethod
    def build(cls, options: AskOptions | Mapping[str, Any] | None = None, **changes: Any) -> AskOptions:
        """``options`` (a value or a mapping; None: the defaults) with ``changes`` on top."""
        if options is None:
            base = cls()
        elif isinstance(options, AskOptions):
            base = options
        else:
            base = cls.from_mapping(options)
        if not changes:
            return base
        cls.from_mapping(changes)  # unknown keys and types refused by name
        return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})

    def replace(self, **changes: Any) -> AskOptions:
        return AskOptions.build(self, **changes)

    # ---------------------------------------------------------------- derived

    @property
    def budget(self):
        """The parsed ``kv_budget`` (``extend.kvbudget.KVBudget``), or None."""
        from longvid.extend.kvbudget import parse_kv_budget

        return None if self.kv_budget is None else parse_kv_budget(self.kv_budget)

    @property
    def anchor_mode(self) -> str:
        """Change anchors need frames in order, which rearrangement breaks."""
        if self.anchors is not None:
            return self.anchors
        return "fixed" if self.rearrange != "none" else DEFAULT_ANCHORS

    def identity(self) -> dict[str, Any]:
        """What changes the answers: every field but those that only change how fast
        (``prefill_chunk`` does change them under a KV budget)."""
        # under a KV budget the chunks decide when the cache is compacted: then they change answers
        fast = {"chunk_frames"} | ({"prefill_chunk"} if self.kv_budget is None else set())
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in fast}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


QUESTION_MAX_CHARS = 100_000


def check_question(question: object) -> str:
    """A question is non-empty text: anything else is refused in one line."""
    if not isinstance(question, str):
        raise InvalidRequestError(f"a question must be text (got {type(question).__name__}: {question!r:.60})")
    if not question.strip():
        raise InvalidRequestError("a question must not be empty")
    if len(question) > QUESTION_MAX_CHARS:
        raise InvalidRequestError(f"a question must be at most {QUESTION_MAX_CHARS:,} characters")
    return question


@functools.cache
def _field_types() -> dict[str, tuple[type, ...]]:
    """Each field's accepted Python types (and whether None is allowed, as type(None))."""
    hints = typing.get_type_hints(AskOptions)
    return {name: typing.get_args(h) if isinstance(h, types.UnionType) else (h,) for name, h in hints.items()}


_TYPE_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _expects(allowed: tuple[type, ...]) -> str:
    words = [_TYPE_WORDS[t] for t in allowed if t is not type(None)]
    return " or ".join(words) + (" (or none)" if type(None) in allowed else "")


def _check_type(name: str, value: Any, allowed: tuple[type, ...]) -> None:
    if value is None:
        if type(None) in allowed:
            return
    elif isinstance(value, bool):  # bool is an int in Python: never a count or a width here
        if bool in allowed:
            return
    elif (
        (isinstance(value, numbers.Integral) and (int in allowed or float in allowed))
        or (isinstance(value, numbers.Real) and float in allowed and math.isfinite(value))
        or (isinstance(value, str) and str in allowed)
    ):
        return
    raise InvalidRequestError(f"{name} must be {_expects(allowed)} (got {value!r})")


def _parse(name: str, text: str, allowed: tuple[type, ...]) -> Any:
    """``text`` as the field's type (model_args and query strings are text)."""
    stripped = text.strip()
    if stripped.lower() in ("", "none", "null") and type(None) in allowed:
        return None
    if bool in allowed:
        if stripped.lower() in ("true", "1", "yes"):
            return True
        if stripped.lower() in ("false", "0", "no"):
            return False
    for kind in (int, float):
        if kind in allowed:
            try:
                return kind(stripped)
            except ValueError:
                pass
    if str in allowed:
        return stripped
    raise InvalidRequestError(f"{name} must be {_expects(allowed)} (got {text!r})")
