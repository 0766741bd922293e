"""What the inference sequence hands between its stages and back to the caller: the encoded
video (``VisualTokens``), and the answer with its report (``Answer``, ``Report``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from longvid.video import Frames


@dataclass
class VisualTokens:
    """A video encoded and pooled: the embeddings in the language model's space (as the
    per-step blocks the pooler made), the grid of each temporal step and its stride."""

    blocks: list[torch.Tensor]  # each (n_i, d); together the visual tokens in order
    grids: list[tuple[int, int]]
    strides: list[int]
    extra: int
    tokens_before_pooling: int
    frames: Frames
    native_grid: tuple[int, int]  # (h, w) of one temporal step before pooling
    step_extra: int = 0  # unpooled tokens before each step's grid (Video-LLaVA's CLS)
    step_positions: tuple[float, ...] | None = None  # M-RoPE temporal position of each step
    kept: list[tuple[int, ...]] | None = None  # per step, the grid tokens a reducer kept
    kept_positions: str = "compact"  # 1-D layouts: renumber kept tokens, or keep their gaps ("original")
    step_text: tuple[tuple[int, int], ...] | None = None  # per step, text tokens before/after (Qwen3-VL)
    deepstack: list[torch.Tensor] | None = None  # per step, (kept tokens, layers, d) DeepStack rows

    @property
    def embeds(self) -> torch.Tensor:
        """All visual tokens, (N, d) (the blocks are joined once, then kept joined)."""
        from longvid.models.inference.spill import load

        if len(self.blocks) != 1 or not isinstance(self.blocks[0], torch.Tensor):
            self.blocks = [torch.cat([load(b) for b in self.blocks], dim=0)]
        return self.blocks[0]

    @property
    def count(self) -> int:
        return sum(int(b.shape[0]) for b in self.blocks)

    def tokens_per_frame(self, frames_per_step: int) -> list[float]:
        """Tokens each frame contributes (a temporal step of k frames shares its tokens)."""
        counts = [h * w if self.kept is None else len(self.kept[t]) for t, (h, w) in enumerate(self.grids)]
        per = [(n + self.step_extra) / frames_per_step for n in counts for _ in range(frames_per_step)]
        return [int(v) if v == int(v) else v for v in per[: len(self.frames)]]


@dataclass
class Report:
    """What one ``ask`` did: frames, tokens, the extension applied, memory and time."""

    model: str
    family: str
    frames: int
    frame_indices: list[int]
    timestamps: list[float]
    visual_tokens_before_pooling: int
    visual_tokens: int
    tokens_per_frame: list[float]
    prompt_tokens: int
    visual_window: int
    language_window: int
    extend: str
    scale: float
    pooling: str
    reduce: str
    rearrange: str
    kv_bits: int
    kv_backend: str
    kv_cache_bytes: int
    peak_memory_bytes: int
    memory_device: str
    seconds: dict[str, float] = field(default_factory=dict)
    generated_tokens: int = 0
    shared_prefix_tokens: int = 0  # tokens of the prompt prefilled once for several questions
    own_rope: str = ""  # the checkpoint's own RoPE scaling, which the extension composes with
    sampling: str = ""  # under fps or pixel budgets: what they chose (frames, size per frame)
    kv_budget: str = ""  # the KV budget as given and the visual tokens it lets each layer hold
    kv_budget_tokens: int | None = None
    kv_dropped_tokens: int = 0  # visual tokens the budget dropped from each layer's cache

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    text: str
    report: Report
    token_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = self.report.to_dict()
        d["answer"] = self.text
        # short aliases users and scripts look for first
        d["visual_tokens"] = self.report.visual_tokens
        return d
