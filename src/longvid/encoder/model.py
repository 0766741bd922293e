"""VideoViT: a video-first encoder (seed 001, LONG VIVIT).

Tubelet embedding (Conv3d, t x p x p = 2 x 16 x 16 by default) for videos and a Conv2d path
for images, whose kernel is the 3D one's 2D counterpart: ``inflate`` turns 2D weights into
3D ones (``central``: the 2D kernel on the middle frame, zeros elsewhere, so a still video
encodes like its image; ``average``: the 2D kernel / t on every frame). Separable learnable
position embeddings: spatial (grid_h x grid_w) + temporal (steps), the temporal ones
linearly interpolated when a video has more steps than they were made for.

Backbones:
- ``joint``: space-time attention over all kept tokens (the recipe);
- ``factorized``: spatial blocks each followed by a gated temporal block,
  h + tanh(alpha) * temporal(h), alpha = 0 at init (so it starts as the image model);
- ``frame``: each frame (tubelet depth 1) encoded alone, without temporal positions, then
  mean or attention pooling over frames: blind to the order of frames.

Masking: a ratio rho of tubelet tokens is dropped at random (deterministic per generator);
the encoder only processes the kept ones (gathered, as FLIP / VideoMAE do), so compute and
memory scale with (1 - rho). ``joint`` can drop any token; ``factorized`` and ``frame`` drop
the same spatial positions in every step (they need whole steps), as the paper's baselines.

Output: mean over tokens -> linear projection -> L2-normalised embedding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from longvid.encoder.layers import ACTIVATIONS, AttentionPoolHead
from longvid.errors import InvalidRequestError

BACKBONES = ("joint", "factorized", "frame")


@dataclass(frozen=True)
class VideoViTConfig:
    image_size: int = 224
    patch: int = 16
    tubelet: int | None = None  # frames per tubelet: 2, and 1 for the frame backbone
    frames: int = 16  # frames the temporal embeddings are made for
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    embed_dim: int = 512
    backbone: str = "joint"
    pooling: str = "mean"  # frame backbone: mean | attention
    # what an image tower's weights need (encoder/towers.py): its activation, LayerNorm
    # epsilon, and how it pools (SigLIP: a multi-head attention probe)
    act: str = "gelu"  # gelu | gelu_tanh | quick_gelu
    ln_eps: float = 1e-5
    head_pool: str = "mean"  # mean | map | cls (joint / factorized backbones; cls: joint only)
    cls_token: bool = False  # a class token before the patch tokens (CLIP; joint backbone only)
    pre_norm: bool = False  # a LayerNorm on the embeddings before the blocks (CLIP)
    tubes: bool = False  # sparse multi-kernel tubes instead of the tubelet grid (encoder/tubes.py; joint)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise InvalidRequestError(f"unknown backbone {self.backbone!r}; choose from {', '.join(BACKBONES)}")
        if self.tubelet is None:  # frozen dataclass: set the resolved default once
            # a frame-level encoder sees one frame at a time: a 2-frame tubelet would let it
            # read the order of two events at a boundary inside a tubelet
            object.__setattr__(self, "tubelet", 1 if self.backbone == "frame" else 2)
        if self.image_size % self.patch:
            raise InvalidRequestError(f"patch {self.patch} does not divide image size {self.image_size}")
        if self.width % self.heads:
            raise InvalidRequestError(f"width {self.width} is not a multiple of heads {self.heads}")
        if self.act not in ACTIVATIONS:
            raise InvalidRequestError(f"unknown activation {self.act!r}; choose from {', '.join(ACTIVATIONS)}")
        if self.head_pool not in ("mean", "map", "cls"):
            raise InvalidRequestError(f"unknown head pooling {self.head_pool!r}; choose mean, map or cls")
        if self.tubes and (self.backbone != "joint" or self.cls_token):
            raise InvalidRequestError("tubes need the joint backbone (and no class token)")
        if (self.cls_token or self.head_pool == "cls") and (self.backbone != "joint" or not self.cls_token):
            raise InvalidRequestError("a class token (and cls pooling) needs the joint backbone and cls_token")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch


# named sizes, like timm's registry: width, depth, heads
SIZES = {
    "tiny": dict(width=192, depth=12, heads=3),
    "small": dict(width=384, depth=12, heads=6),
    "base": dict(width=768, depth=12, heads=12),
    "large": dict(width=1024, depth=24, heads=16),
    "micro": dict(width=64, depth=4, heads=4, image_size=32, patch=8, embed_dim=64),  # tests, CPU recipes
}


def config_for(size: str, **overrides) -> VideoViTConfig:
    if size not in SIZES:
        raise InvalidRequestError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    return VideoViTConfig(**{**SIZES[size], **overrides})


class Block(nn.Module):
    """Pre-norm transformer block (SDPA attention)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, act: str = "gelu", eps: float = 1e-5) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        hidden = round(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), ACTIVATIONS[act](), nn.Linear(hidden, width))
        self.adapter: nn.Module | None = None  # encoder/adapt.py: a bottleneck after the block

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x if self.adapter is None else self.adapter(x)


class GatedTemporalBlock(nn.Module):
    """h + tanh(alpha) * block(h) along time, alpha = 0 at init."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.block = Block(width, heads, mlp_ratio)
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        b, n, d = x.shape  # n = steps * spatial
        spatial = n // steps
        t = x.reshape(b, steps, spatial, d).transpose(1, 2).reshape(b * spatial, steps, d)
        delta = (self.block(t) - t).reshape(b, spatial, steps, d).transpose(1, 2).reshape(b, n, d)
        return x + torch.tanh(self.alpha) * delta


class VideoViT(nn.Module):
    def __init__(self, config: VideoViTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tubelet = nn.Conv3d(
            3, c.width, kernel_size=(c.tubelet, c.patch, c.patch), stride=(c.tubelet, c.patch, c.patch)
        )
        self.patch = nn.Conv2d(3, c.width, kernel_size=c.patch, stride=c.patch)
        self.pos_spatial = nn.Parameter(torch.randn(c.grid * c.grid, c.width) * 0.02)
        # the frame backbone encodes each frame alone, like an image model: no temporal
        # positions (with them its "order-blind" mean pooling learned order from them)
        self.pos_temporal = (
            None if c.backbone == "frame" else nn.Parameter(torch.randn(max(1, c.frames // c.tubelet), c.width) * 0.02)
        )
        self.blocks = nn.ModuleList(Block(c.width, c.heads, c.mlp_ratio, c.act, c.ln_eps) for _ in range(c.depth))
        if c.backbone == "factorized":
            self.temporal = nn.ModuleList(GatedTemporalBlock(c.width, c.heads, c.mlp_ratio) for _ in range(c.depth))
        if c.backbone == "frame" and c.pooling == "attention":
            self.pool_query = nn.Parameter(torch.zeros(c.width))
        self.norm = nn.LayerNorm(c.width, eps=c.ln_eps)
        if c.cls_token:
            self.cls = nn.Parameter(torch.zeros(c.width))
            self.pos_cls = nn.Parameter(torch.zeros(c.width))
        if c.pre_norm:
            self.pre_norm = nn.LayerNorm(c.width, eps=c.ln_eps)
        if c.tubes:
            from longvid.encoder.tubes import SparseTubes

            self.sparse_tubes = SparseTubes(c.width, c.tubelet, c.patch)
        if c.head_pool == "map":
            self.map_head = AttentionPoolHead(c.width, c.heads, c.mlp_ratio, c.act, c.ln_eps)
        self.head = nn.Linear(c.width, c.embed_dim, bias=False)
        self.grad_checkpointing = False  # recompute each block's activations in backward

    def _run(self, block: nn.Module, x: torch.Tensor, *args) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, *args, use_reentrant=False)
        return block(x, *args)

    # ------------------------------------------------------------------ embedding

    def temporal_embeddings(self, steps: int) -> torch.Tensor:
        """(steps, width): the learned ones, linearly interpolated to more (or fewer) steps."""
        pos = self.pos_temporal
        if pos is None:  # the frame backbone
            return self.pos_spatial.new_zeros(steps, self.config.width)
        if steps == pos.shape[0]:
            return pos
        return F.interpolate(pos.T[None], size=steps, mode="linear", align_corners=True)[0].T

    def steps_of(self, video: torch.Tensor) -> int:
        """Temporal steps of a video (b, frames, 3, H, W): frames / tubelet; an image (b, 3, H, W): 1."""
        if video.ndim == 4:
            return 1
        frames = video.shape[1]
        if frames % self.config.tubelet:
            raise InvalidRequestError(f"frames ({frames}) must be a multiple of the tubelet ({self.config.tubelet})")
        return frames // self.config.tubelet

    def patchify(
        self, video: torch.Tensor, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flattened tubelets (b, steps * grid^2 or kept, 3 * t * p * p) in (step, row, column)
        order, and the embedding as a matrix and bias: a Conv3d whose stride is its kernel is
        this linear map, and as one it embeds the kept tubelets only (masking then saves the
        embedding's compute and the memory its backward keeps). ``keep`` picks tubelets by
        indexing the video in place: only the kept pixels are ever copied."""
        c, g = self.config.patch, self.config.grid
        b = video.shape[0]
        if video.ndim == 4:  # image: the 2D path, one step of depth 1
            t, steps, weight, bias = 1, 1, self.patch.weight, self.patch.bias
            grid = video.reshape(b, 1, 1, 3, g, c, g, c)
        else:
            t, steps, weight, bias = self.config.tubelet, self.steps_of(video), self.tubelet.weight, self.tubelet.bias
            grid = video.reshape(b, steps, t, 3, g, c, g, c)  # a view: no copy
        if keep is None:
            x = grid.permute(0, 1, 4, 6, 3, 2, 5, 7).reshape(b, steps * g * g, 3 * t * c * c)
        else:
            step, cell = keep // (g * g), keep % (g * g)
            rows = torch.arange(b, device=keep.device)[:, None]
            x = grid[rows, step, :, :, cell // g, :, cell % g, :]  # (b, kept, t, 3, p, p)
            x = x.transpose(2, 3).reshape(b, keep.shape[1], 3 * t * c * c)
        return x, weight.flatten(1), bias

    def embed(self, video: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """Tokens (b, steps * grid^2 or kept, width) with positions, and the number of steps.
        ``video``: (b, frames, 3, H, W) in [-1, 1] or (b, 3, H, W) for images; ``keep``:
        indices of the tokens to embed (b, kept), from ``keep_indices``."""
        steps = self.steps_of(video)
        patches, weight, bias = self.patchify(video, keep)
        positions = (self.pos_spatial[None] + self.temporal_embeddings(steps)[:, None]).flatten(0, 1)
        x = F.linear(patches, weight, bias) + (positions if keep is None else positions[keep])
        if self.config.cls_token:  # one class token for the whole clip, never masked
            x = torch.cat([(self.cls + self.pos_cls).expand(x.shape[0], 1, -1), x], dim=1)
        if self.config.pre_norm:
            x = self.pre_norm(x)
        return x, steps

    # ------------------------------------------------------------------ masking

    def keep_indices(self, batch: int, steps: int, ratio: float, generator: torch.Generator | None = None):
        """Indices of kept tokens, (batch, kept), sorted; the same per seed."""
        if not 0 <= ratio < 1:
            raise InvalidRequestError(f"mask ratio must be in [0, 1) (got {ratio})")
        spatial = self.config.grid**2
        device = self.pos_spatial.device
        if self.config.backbone == "joint":
            n = steps * spatial
            keep = max(1, round(n * (1 - ratio)))
            noise = torch.rand(batch, n, generator=generator, device=device)
            return noise.argsort(dim=1)[:, :keep].sort(dim=1).values
        keep = max(1, round(spatial * (1 - ratio)))
        noise = torch.rand(batch, spatial, generator=generator, device=device)
        cols = noise.argsort(dim=1)[:, :keep].sort(dim=1).values  # same positions every step
        return (torch.arange(steps, device=device)[None, :, None] * spatial + cols[:, None, :]).flatten(1)

    # ------------------------------------------------------------------ forward

    def encode_tokens(
        self, video: torch.Tensor, mask_ratio: float = 0.0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, int]:
        """Final normed tokens (b, kept, width) and the number of temporal steps. Unmasked,
        they are in (step, row, column) order: ``.view(b, steps, grid * grid, width)`` (after
        the class token, first, when the model has one: ``patch_tokens`` leaves it out)."""
        if self.config.tubes and video.ndim == 5:  # sparse tubes: masking drops tube tokens
            x = self.sparse_tubes(video)
            if mask_ratio > 0:
                n = x.shape[1]
                kept = max(1, round(n * (1 - mask_ratio)))
                order = torch.rand(x.shape[0], n, generator=generator, device=x.device).argsort(dim=1)
                x = x.gather(1, order[:, :kept, None].sort(dim=1).values.expand(-1, -1, x.shape[2]))
            for block in self.blocks:
                x = self._run(block, x)
            return self.norm(x), 1
        keep = None
        if mask_ratio > 0:  # drawn before embedding: only kept tubelets are embedded at all
            keep = self.keep_indices(video.shape[0], self.steps_of(video), mask_ratio, generator)
        x, steps = self.embed(video, keep)
        b, _, d = x.shape
        kind = self.config.backbone
        if kind == "joint":
            for block in self.blocks:
                x = self._run(block, x)
            return self.norm(x), steps
        per_step = x.shape[1] // steps
        if kind == "factorized":
            for block, temporal in zip(self.blocks, self.temporal, strict=True):
                x = self._run(block, x.reshape(b * steps, per_step, d)).reshape(b, steps * per_step, d)
                x = self._run(temporal, x, steps)
            return self.norm(x), steps
        # frame: each step alone
        x = x.reshape(b * steps, per_step, d)
        for block in self.blocks:
            x = self._run(block, x)
        return self.norm(x).reshape(b, steps * per_step, d), steps

    def patch_tokens(
        self, video: torch.Tensor, mask_ratio: float = 0.0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, int]:
        """As ``encode_tokens`` without the class token: (b, kept, width) in (step, row,
        column) order, for callers that lay tokens out by step (the captioner, long inputs)."""
        if self.config.tubes:
            raise InvalidRequestError("sparse tubes have no per-step token layout (captioning, long inputs)")
        x, steps = self.encode_tokens(video, mask_ratio, generator)
        return (x[:, 1:] if self.config.cls_token else x), steps

    def forward_features(
        self, video: torch.Tensor, mask_ratio: float = 0.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Pooled features (b, width) of the kept tokens."""
        x, steps = self.encode_tokens(video, mask_ratio, generator)
        if self.config.backbone != "frame":
            if self.config.head_pool == "cls":
                return x[:, 0]
            return self.map_head(x) if self.config.head_pool == "map" else x.mean(dim=1)
        b, n, d = x.shape
        frames = x.reshape(b, steps, n // steps, d).mean(dim=2)  # per-step features, then pooled over steps
        if self.config.pooling == "attention":
            weights = torch.softmax(frames @ self.pool_query / math.sqrt(d), dim=1)
            return (weights[..., None] * frames).sum(dim=1)
        return frames.mean(dim=1)

    def forward(
        self, video: torch.Tensor, mask_ratio: float = 0.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """L2-normalised embeddings (b, embed_dim)."""
        return F.normalize(self.head(self.forward_features(video, mask_ratio, generator)), dim=-1)

    # ------------------------------------------------------------------ image -> video

    @torch.no_grad()
    def inflate(self, mode: str = "central") -> None:
        """Set the tubelet kernel from the 2D patch kernel (``central`` or ``average``)."""
        w2 = self.patch.weight  # (d, 3, p, p)
        t = self.config.tubelet
        w3 = torch.zeros_like(self.tubelet.weight)
        if mode == "central":
            w3[:, :, t // 2] = w2
        elif mode == "average":
            w3[:] = (w2 / t)[:, :, None]
        else:
            raise InvalidRequestError(f"unknown inflation {mode!r}; choose central or average")
        self.tubelet.weight.copy_(w3)
        self.tubelet.bias.copy_(self.patch.bias)

    @torch.no_grad()
    def resize_temporal(self, frames: int) -> None:
        """Make the temporal embeddings ``frames`` long (interpolated, so outputs are unchanged:
        the forward pass interpolates the same way) and own them, for training at that length."""
        steps = max(1, frames // self.config.tubelet)
        if self.pos_temporal is not None and steps != self.pos_temporal.shape[0]:
            self.pos_temporal = nn.Parameter(self.temporal_embeddings(steps).contiguous().clone())
        self.config = replace(self.config, frames=frames)

    def to_dict(self) -> dict:
        return asdict(self.config)


def trainable_last(model: VideoViT, layers: int | None) -> list[nn.Parameter]:
    """``None``: everything trains. ``K``: only the last K blocks (their temporal blocks too),
    the final norm and the head (the short -> long stage trains the last 4)."""
    if layers is None:
        return [p for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    keep: list[nn.Module] = [*model.blocks[-layers:], model.norm, model.head]
    if hasattr(model, "temporal"):
        keep += list(model.temporal[-layers:])
    params = [p for m in keep for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params
