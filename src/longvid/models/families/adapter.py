"""The adapter base class: what one family supplies to the shared inference sequence.

An adapter is built from a checkpoint's files (``CheckpointFiles``) and, when there are
weights, its model. Everything a request needs that is not weights (frame preprocessing,
the prompt, token counts, M-RoPE time) works without the model, which is what
``longvid.prepare`` and ``longvid inspect`` use. Adapters hold no per-request state: what a
request computes (a Qwen video's grid, its seconds per step) travels with the request's
own objects (``PixelBatch``, ``VisualTokens``).

Each family file declares: the model types it handles and their transformers class, its
preprocessing (``pixel_spec``), its default prompt when the checkpoint ships no template,
its released checkpoints' frame count and 7B geometry, and a tiny config (``tiny_config``)
for offline tests. ``registry.ADAPTERS`` lists the files; nothing else names a family.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from longvid.errors import InvalidRequestError
from longvid.extend.pooling import Schedule, uniform
from longvid.extend.rope import OwnRope
from longvid.models.checkpoint.files import CheckpointFiles
from longvid.models.checkpoint.processing import PixelSpec
from longvid.models.checkpoint.prompt import chatml, render, split_ids
from longvid.models.inference.budget import Geometry


@dataclass
class PixelBatch:
    """A chunk of frames as the vision tower takes them; ``grid_thw`` for patch-flattened
    layouts (Qwen: temporal steps, patch rows, patch columns)."""

    values: torch.Tensor
    frames: int
    grid_thw: tuple[int, int, int] | None = None


class FamilyAdapter(ABC):
    """One model family. Subclasses stay small: they map, the shared code runs."""

    model_types: ClassVar[tuple[str, ...]] = ()
    model_classes: ClassVar[dict[str, str]] = {}  # model_type -> transformers class name
    pooling_op: ClassVar[str] = "bilinear"
    frames_per_step: ClassVar[int] = 1  # frames merged into one temporal step (Qwen2-VL: 2)
    position_layout: ClassVar[str] = "1d"  # "1d" or "mrope"
    trained_frames: ClassVar[int] = 32  # frames per video the released checkpoints saw
    video_token: ClassVar[str] = "<video>"  # the token the processor repeats for the video
    video_markup: ClassVar[str] = "<video>"  # how a template writes the video
    step_extra_tokens: ClassVar[int] = 0  # unpooled tokens before each step's grid
    reference_7b: ClassVar[dict[str, Geometry]] = {}  # model_type -> released 7B geometry
    template_note: ClassVar[str] = "ChatML"  # the prompt used when the checkpoint has no template

    def __init__(self, files: CheckpointFiles, model: Any = None) -> None:
        self.files = files
        self.model = model
        self.name = files.name
        # the model's own config object when there is a model: attention is switched on it
        self.config = model.config if model is not None else files.config
        self.text_config = self.config.text_config
        self.tokenizer = files.tokenizer
        self.preprocess = files.preprocess
        self.spec = self.pixel_spec()

    # ---- what each family supplies

    @abstractmethod
    def pixel_spec(self) -> PixelSpec:
        """The official processor's frame preprocessing, from the checkpoint's config."""

    def native_grid(self, width: int | None = None, height: int | None = None) -> tuple[int, int]:
        """(h, w) tokens of one temporal step before longvid's pooling, for frames of
        ``width`` x ``height`` (or the largest the processor allows when not given). By
        default: the tower's input size over its patch size, one token a patch (the fixed and
        cropped sizes of the LLaVA families do not depend on the frame)."""
        w, h = self.spec.output_size(width or 1, height or 1)
        patch = self.config.vision_config.patch_size
        return h // patch, w // patch

    @abstractmethod
    def encode(self, batch: PixelBatch) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Vision tower (+ projector when the family pools after it): → a grid (steps, h, w, d),
        or (grid, prefix) where prefix (steps, k, d) are per-step tokens that precede each
        step's grid and are never pooled (Video-LLaVA's CLS)."""

    @classmethod
    @abstractmethod
    def tiny_config(cls, model_type: str, ids: dict[str, int], text: dict, vision: dict) -> Any:
        """A transformers config of a tiny random model (``longvid.models.checkpoint.tiny``)."""

    @classmethod
    @abstractmethod
    def tiny_preprocess(cls, side: int, patch: int) -> dict:
        """The processor config of a tiny model whose frames are ``side`` pixels a side."""

    # the family's own special tokens, in a tiny checkpoint's vocabulary (besides the chat's)
    tiny_special_tokens: ClassVar[tuple[str, ...]] = ("<image>", "<video>")

    @classmethod
    def shrink_vision(cls, config: Any, vision_hidden: int, hidden: int) -> None:
        """Narrow a real config's vision tower in place, its geometry kept (``checkpoint.tiny.
        shrink_config``). Default: a CLIP / SigLIP tower of 3 layers (the LLaVA families read
        layer -2 or -1)."""
        vc = config.vision_config
        vc.hidden_size, vc.intermediate_size, vc.num_attention_heads, vc.num_hidden_layers = (
            vision_hidden, 2 * vision_hidden, 2, 3,
        )  # fmt: skip

    def layout(self, values: torch.Tensor) -> PixelBatch:
        """Normalised (t, 3, h, w) frames → the tower's input. Identity by default."""
        return PixelBatch(values, values.shape[0])

    def official_inputs(self, batch: PixelBatch, duration: float | None = None) -> dict[str, torch.Tensor]:
        """The video's entries of the official processor's output (``duration``: seconds of
        the video the frames were sampled from, None when unknown)."""
        return {"pixel_values_videos": batch.values[None]}

    def text_inputs(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Entries the official processor derives from ``input_ids`` beyond the mask."""
        return {}

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """Applied to pooled tokens (n, d_vision) → (n, d): for families that pool before
        their projector (LLaVA-NeXT-Video). Identity by default."""
        return tokens

    def default_pooling(self) -> Schedule:
        return uniform(1)

    def extra_visual_tokens(self) -> torch.Tensor | None:
        """Tokens appended after the video's grid tokens (LLaVA-OneVision's newline)."""
        return None

    def extra_token_count(self) -> int:
        """How many tokens ``extra_visual_tokens`` gives, known without weights."""
        return 0

    def step_positions(self, steps: int, frames: int, duration: float | None) -> tuple[float, ...] | None:
        """Temporal M-RoPE position of each temporal step of ``frames`` frames sampled from
        ``duration`` seconds of video (None: 0, 1, 2, ...)."""
        return None

    def default_template(self) -> str:
        return chatml(self.video_markup)

    # ---- families whose prompt carries time as text (Qwen3-VL): none by default

    def video_spec(self, frames: int, width: int, height: int) -> PixelSpec | None:
        """One frame size for a whole ``frames``-frame video when the family's rule depends on
        the frame count (a pixel budget over all frames); None: each frame by ``spec``."""
        return None

    def step_text(self, frames) -> list[tuple[list[int], list[int]]] | None:
        """Per temporal step, text ids the prompt puts before and after its tokens (Qwen3-VL's
        timestamps); None: the video is one block of tokens."""
        return None

    def with_spec(self, spec: PixelSpec) -> FamilyAdapter:
        """A view of this adapter that resizes by ``spec`` (one request's size): the model,
        tokenizer and config are shared, the adapter itself is not changed."""
        view = copy.copy(self)
        view.spec = spec
        return view

    def split_visual(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled tokens → (embeddings, per-token features for the first language layers or
        None): Qwen3-VL's DeepStack rows travel as extra channels through pooling."""
        return tokens, None

    def video_prompt_ids(self, before: list[int], after: list[int], frames, tokens_per_step: int) -> list[int]:
        """The ids the official processor writes: the text around the video and one video
        token per visual token (``prepare``)."""
        steps = -(-len(frames) // self.frames_per_step)
        count = steps * tokens_per_step + self.extra_token_count()
        video_id = self.tokenizer.convert_tokens_to_ids(self.video_token)
        return [*before, *([video_id] * count), *after]

    # ---- weight-free, shared

    def default_frames(self) -> int:
        """Frames per video the checkpoint was trained with (its card, else the family's)."""
        return int(getattr(self.config, "longvid_trained_frames", 0) or self.trained_frames)

    @property
    def template(self) -> str:
        return self.files.chat_template or self.default_template()

    def frame_size(self, width: int, height: int, exact: bool = True) -> tuple[int, int] | None:
        """(W, H) the decoder should resize to: None (native size) when longvid resizes
        exactly after decoding; the resized size when the decoder does it (``exact=False``)."""
        return None if exact else self.spec.resized_size(width, height)

    def pixels(self, frames: np.ndarray) -> PixelBatch:
        """uint8 (t, H, W, 3) RGB frames → the vision tower's input, on the model's device."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InvalidRequestError(f"frames must be (t, H, W, 3) RGB (got shape {tuple(frames.shape)})")
        values = self.spec.normalize(self.spec.uint8(frames))
        batch = self.layout(values)
        if self.model is not None:
            batch.values = batch.values.to(device=self.device, dtype=self.dtype)
        return batch

    def prompt_text(self, question: str, history: tuple[tuple[str, str], ...] = ()) -> str:
        return render(self.tokenizer, question, self.template, history)

    def prompt_ids(self, question: str, history: tuple[tuple[str, str], ...] = ()) -> tuple[list[int], list[int]]:
        """Token ids before and after the video (``history``: earlier (question, answer)
        turns of a conversation about the same video; the question is then a follow-up)."""
        return split_ids(self.tokenizer, self.prompt_text(question, history), self.video_token)

    def video_token_count(self, frames: int, width: int, height: int) -> int:
        """Visual tokens of ``frames`` frames of ``width`` x ``height`` under the family's own
        pooling: as many video tokens as the official processor writes."""
        h, w = self.native_grid(width, height)
        steps = -(-frames // self.frames_per_step)
        return (
            self.default_pooling().expected_tokens(steps, h, w)
            + steps * self.step_extra_tokens
            + self.extra_token_count()
        )

    def patches_per_frame(self, grid_h: int, grid_w: int) -> int:
        """Patches one frame sends through the vision tower, for a step grid of (h, w)."""
        return grid_h * grid_w

    def native_tokens_per_frame(self, grid_h: int, grid_w: int) -> float:
        """Tokens per frame with the family's own pooling, per-step tokens (Video-LLaVA's
        CLS) included: what W_v is measured in."""
        step = self.default_pooling().expected_tokens(1, grid_h, grid_w) + self.step_extra_tokens
        return step / self.frames_per_step

    def visual_window(self, grid: tuple[int, int] | None = None) -> int:
        """W_v: the checkpoint's own (a testbed card's ``longvid_visual_window``), else the
        visual span the family was trained with: trained frames x tokens per frame of ``grid``,
        plus the tokens after the video (LLaVA-OneVision's newline). At the trained frame count
        the scale is then exactly 1."""
        config_value = getattr(self.config, "longvid_visual_window", None)
        if config_value:
            return int(config_value)
        if grid is None:
            raise InvalidRequestError("visual window unknown before the first frame is encoded")
        return round(self.trained_frames * self.native_tokens_per_frame(*grid)) + self.extra_token_count()

    def reference_geometry(self) -> Geometry | None:
        return self.reference_7b.get(self.config.model_type)

    def head_dim(self) -> int:
        tc = self.text_config
        return getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads

    def rotary_dim(self) -> int:
        """Dimensions per head that rotate (all of them but for partial rotary: Qwen3.5)."""
        return self.head_dim()

    def rope_base(self) -> float:
        return float(self.text_config.rope_parameters["rope_theta"])

    def own_rope(self) -> OwnRope:
        """The RoPE scaling the checkpoint ships with (every extension mode composes with it)."""
        tc = self.text_config
        return OwnRope.from_parameters(getattr(tc, "rope_parameters", None), tc.max_position_embeddings)

    def language_window(self) -> int:
        """W_l: the positions the checkpoint was trained at, its own RoPE scaling included
        (LLaVA-NeXT-Video-7B: 4,096 x linear 2.5 = 10,240)."""
        return self.own_rope().trained_window

    def eos_ids(self) -> set[int]:
        ids = set()
        for source in (self.tokenizer.eos_token_id, getattr(self.text_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, list):
                ids.update(source)
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            ids.add(im_end)
        return ids

    # ---- needs the model

    def _require_model(self):
        if self.model is None:
            raise InvalidRequestError(f"{self.name}: this needs the model's weights (read without them)")
        return self.model

    @property
    def language_model(self):
        return self._require_model().model.language_model

    @property
    def device(self) -> torch.device:
        return next(self._require_model().parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self._require_model().parameters()).dtype


def select_features(config, hidden_states: Sequence[torch.Tensor], drop_cls: bool) -> torch.Tensor:
    """The vision tower's feature layer(s) as the LLaVA families pick them."""
    layer = config.vision_feature_layer
    feats = hidden_states[layer] if isinstance(layer, int) else torch.cat([hidden_states[i] for i in layer], -1)
    return feats[:, 1:] if drop_cls else feats
