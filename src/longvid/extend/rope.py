"""RoPE frequency variants as plain functions, and the visual context window.

Every function maps (head_dim, base, factor, original_length, ...) to ``(inv_freq,
attention_factor)``: the rotary inverse frequencies, shape (head_dim // 2,), and the
factor that multiplies cos and sin (YaRN's attention temperature; 1 elsewhere). They equal
transformers' ``ROPE_INIT_FUNCTIONS`` whenever the parameters coincide (tests compare).
What longvid adds is *which* length and scale go in (§2.1 of the design):

- global modes (``linear``, ``ntk``, ``dynamic``, ``yarn``) scale against the language
  window W_l = max_position_embeddings;
- ``visual-yarn`` is YaRN whose original length is the *visual* window W_v (frames the
  checkpoint was trained on × tokens per frame) and whose factor is s = N_v / W_v;
- ``visual-pi`` leaves the frequencies alone and compresses the positions of visual tokens
  instead (``longvid.extend.positions``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from longvid.errors import InvalidRequestError
from longvid.extend.modes import EXTEND_MODES

RopeFn = Callable[..., tuple[torch.Tensor, float]]


def _default(head_dim: int, base: float) -> torch.Tensor:
    # int64 arange then float, exactly as transformers builds it, so results are bit-equal
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))


def rope_default(head_dim: int, base: float, factor: float = 1.0, original_length: int | None = None) -> tuple:
    """Plain RoPE: theta_i = base^(-2i/d)."""
    return _default(head_dim, base), 1.0


def rope_linear(head_dim: int, base: float, factor: float = 1.0, original_length: int | None = None) -> tuple:
    """Position interpolation: every frequency divided by s (positions squeezed by s)."""
    return _default(head_dim, base) / factor, 1.0


def rope_ntk(head_dim: int, base: float, factor: float = 1.0, original_length: int | None = None) -> tuple:
    """NTK-aware base change: b' = b * s^(d / (d - 2))."""
    return _default(head_dim, base * factor ** (head_dim / (head_dim - 2))), 1.0


def rope_dynamic(
    head_dim: int,
    base: float,
    factor: float = 1.0,
    original_length: int | None = None,
    seq_len: int | None = None,
) -> tuple:
    """Dynamic NTK (transformers' formula): b' = b * (s * L / L0 - (s - 1))^(d / (d - 2)),
    with L = max(seq_len, L0); equals plain RoPE while the sequence fits L0."""
    if original_length is None:
        raise InvalidRequestError("dynamic RoPE needs original_length")
    length = max(seq_len or original_length, original_length)
    new_base = base * ((factor * length / original_length) - (factor - 1)) ** (head_dim / (head_dim - 2))
    return _default(head_dim, new_base), 1.0


def yarn_attention_factor(factor: float) -> float:
    """YaRN's temperature: 0.1 * ln(s) + 1 (1 for s <= 1)."""
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def rope_yarn(
    head_dim: int,
    base: float,
    factor: float = 1.0,
    original_length: int | None = None,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    attention_factor: float | None = None,
) -> tuple:
    """YaRN: interpolate the low frequencies (wavelength > original length / beta_slow),
    keep the high ones (more than beta_fast rotations over it), ramp linearly in between."""
    if original_length is None:
        raise InvalidRequestError("yarn RoPE needs original_length")
    if attention_factor is None:
        attention_factor = yarn_attention_factor(factor)

    def correction_dim(rotations: float) -> float:
        return (head_dim * math.log(original_length / (rotations * 2 * math.pi))) / (2 * math.log(base))

    # whole dimensions, as transformers' default (truncate=True)
    low, high = math.floor(correction_dim(beta_fast)), math.ceil(correction_dim(beta_slow))
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = torch.clamp((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos_freqs = base ** (torch.arange(0, head_dim, 2).float() / head_dim)
    extrapolation, interpolation = 1.0 / pos_freqs, 1.0 / (factor * pos_freqs)
    keep = 1 - ramp  # 1: keep the original (high) frequency, 0: interpolate
    return interpolation * (1 - keep) + extrapolation * keep, float(attention_factor)


# name -> function; adding a variant is one function and one entry
ROPE_FUNCTIONS: dict[str, RopeFn] = {
    "default": rope_default,
    "linear": rope_linear,
    "ntk": rope_ntk,
    "dynamic": rope_dynamic,
    "yarn": rope_yarn,
}


def inv_freq(
    rope_type: str,
    head_dim: int,
    base: float,
    factor: float = 1.0,
    original_length: int | None = None,
    **params,
) -> tuple[torch.Tensor, float]:
    """``(inv_freq, attention_factor)`` for a RoPE variant by name (see ``ROPE_FUNCTIONS``)."""
    if rope_type not in ROPE_FUNCTIONS:
        raise InvalidRequestError(f"unknown RoPE type {rope_type!r}; choose from {', '.join(ROPE_FUNCTIONS)}")
    if factor < 1:
        raise InvalidRequestError(f"RoPE scale factor must be >= 1 (got {factor})")
    fn = ROPE_FUNCTIONS[rope_type]
    known = set(inspect.signature(fn).parameters) - {"head_dim", "base", "factor", "original_length"}
    unknown = sorted(set(params) - known)
    if unknown:  # a misspelled parameter must not be silently dropped
        takes = ", ".join(sorted(known)) or "no extra parameters"
        raise InvalidRequestError(f"{rope_type} RoPE takes no {', '.join(unknown)}; it takes {takes}")
    return fn(head_dim, base, factor=factor, original_length=original_length, **params)


# ----------------------------------------------------------------------------- a checkpoint's own


@dataclass(frozen=True)
class OwnRope:
    """The RoPE scaling a checkpoint ships with (its config's ``rope_parameters``), the base
    every extension mode composes with. ``positions``: the config's max_position_embeddings.

    - default: trained at ``positions``.
    - linear (LLaVA-NeXT-Video-7B: factor 2.5 over 4,096): frequencies / factor, trained at
      ``positions`` x factor. A mode composes by acting on the unscaled frequencies with its
      windows divided by the factor, then dividing by the factor: the ratios of wavelengths to
      windows that YaRN's ramp and the dynamic base read are then those the model has.
    - yarn / dynamic / anything else: kept as they are within the window; a mode that would
      change the frequencies beyond it is refused (composing YaRN or dynamic NTK with another
      frequency scaling is not defined); ``visual-pi`` (positions only) composes with any.
    """

    rope_type: str = "default"
    factor: float = 1.0
    positions: int = 0
    original_positions: int | None = None  # yarn: original_max_position_embeddings

    @classmethod
    def from_parameters(cls, params: dict | None, max_positions: int) -> OwnRope:
        params = params or {}
        rope_type = params.get("rope_type") or params.get("type") or "default"
        if rope_type == "mrope":  # Qwen2-VL's old spelling of default frequencies over M-RoPE
            rope_type = "default"
        factor = float(params.get("factor") or 1.0)
        return cls(rope_type, factor, int(max_positions), params.get("original_max_position_embeddings"))

    @property
    def trained_window(self) -> int:
        """W_l: the positions the checkpoint was trained at, its own scaling included."""
        if self.rope_type == "linear":
            return round(self.positions * self.factor)
        if self.rope_type == "yarn":
            return round((self.original_positions or self.positions) * self.factor)
        return self.positions

    def describe(self) -> str:
        if self.rope_type == "default":
            return f"default over {self.positions:,} positions"
        return f"{self.rope_type} x{self.factor:g} over {self.positions:,} positions (W_l {self.trained_window:,})"


# ----------------------------------------------------------------------------- modes


@dataclass(frozen=True)
class RopePlan:
    """What one request does to RoPE: the mode, the window it scales against, the scale,
    and the frequencies to use (None: leave the model's own)."""

    mode: str
    window: int  # W_v for visual modes, W_l for global ones, 0 for none
    scale: float
    position_scale: float  # visual-pi: visual tokens advance 1/position_scale each
    inv_freq: torch.Tensor | None
    attention_factor: float


def scale_for(tokens: int, window: int) -> float:
    """s = max(1, tokens / window)."""
    if window <= 0:
        raise InvalidRequestError(f"context window must be > 0 (got {window})")
    return max(1.0, tokens / window)


def plan_rope(
    mode: str,
    *,
    head_dim: int,
    base: float,
    visual_tokens: int,
    total_tokens: int,
    visual_window: int,
    language_window: int,
    own: OwnRope | None = None,
    **params,
) -> RopePlan:
    """Choose frequencies and scales for one request (pure: no model involved), on top of the
    checkpoint's ``own`` scaling (``language_window`` is then its trained window,
    ``OwnRope.trained_window``). ``params``: ``dynamic_factor`` for dynamic; ``beta_fast``,
    ``beta_slow``, ``attention_factor`` for yarn and visual-yarn; anything else is refused."""
    own = own or OwnRope()
    allowed = {"dynamic": {"dynamic_factor"}, "yarn": {"beta_fast", "beta_slow", "attention_factor"}}
    if mode in EXTEND_MODES:
        unknown = sorted(set(params) - allowed.get(EXTEND_MODES[mode][0], set()))
        if unknown:
            raise InvalidRequestError(f"extension mode {mode!r} takes no {', '.join(unknown)}")
    if mode not in EXTEND_MODES:
        raise InvalidRequestError(f"unknown extension mode {mode!r}; choose from {', '.join(EXTEND_MODES)}")
    rope_type, against = EXTEND_MODES[mode]
    if against == "none":
        return RopePlan(mode, 0, 1.0, 1.0, None, 1.0)
    if against == "visual":
        window, scale = visual_window, scale_for(visual_tokens, visual_window)
    else:
        window, scale = language_window, scale_for(total_tokens, language_window)
    if mode == "visual-pi":
        return RopePlan(mode, window, scale, scale, None, 1.0)
    if scale == 1.0:  # within the window every mode is the model's own RoPE
        return RopePlan(mode, window, 1.0, 1.0, None, 1.0)
    if own.rope_type not in ("default", "linear"):
        raise InvalidRequestError(
            f"extension mode {mode!r} beyond the window (scale {scale:.3g}) would change the frequencies of this "
            f"checkpoint's own {own.rope_type} RoPE scaling, and the two do not compose; use visual-pi (positions "
            "only), or fewer tokens"
        )
    shrink = own.factor if own.rope_type == "linear" else 1.0  # the model's frequencies are base / shrink
    if rope_type == "dynamic":
        # transformers' dynamic NTK: its own "factor" knob (2.0 is the usual config value;
        # 1.0 would make it equal to ntk), growth from the request's length over the window
        freqs, attn = inv_freq(
            "dynamic", head_dim, base, factor=params.get("dynamic_factor", 2.0), original_length=window / shrink,
            seq_len=total_tokens / shrink,
        )  # fmt: skip
    else:
        freqs, attn = inv_freq(rope_type, head_dim, base, factor=scale, original_length=window / shrink, **params)
    return RopePlan(mode, window, scale, 1.0, freqs / shrink, attn)
