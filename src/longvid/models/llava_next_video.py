"""LLaVA-NeXT-Video (``LlavaNextVideoForConditionalGeneration``).

Frames are resized to the CLIP tower's square input (336 px: a 24x24 grid), the CLS token is
dropped ("default" strategy), the grid is pooled *before* the projector with the checkpoint's
``spatial_pool_mode`` (average, stride 2: 12x12 = 144 tokens a frame), and the projector then
maps each pooled token. Positions are 1-D. The released models were trained on 32 frames.
"""

from __future__ import annotations

import numpy as np
import torch

from longvid.errors import UnsupportedModelError
from longvid.extend.pooling import Schedule, uniform
from longvid.models.base import FamilyAdapter
from longvid.models.prompt import split_prompt

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def square_pixels(frames: np.ndarray, size: int, mean, std, device, dtype) -> torch.Tensor:
    """uint8 (t, H, W, 3) → normalised (t, 3, size, size) (bicubic if not already that size)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic")
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return x.to(device=device, dtype=dtype)


def select_features(config, hidden_states, drop_cls: bool) -> torch.Tensor:
    layer = config.vision_feature_layer
    feats = hidden_states[layer] if isinstance(layer, int) else torch.cat([hidden_states[i] for i in layer], -1)
    return feats[:, 1:] if drop_cls else feats


class LlavaNextVideoAdapter(FamilyAdapter):
    model_types = ("llava_next_video",)
    trained_frames = 32
    video_placeholder = "<video>"

    def __init__(self, model, tokenizer, preprocess: dict, name: str) -> None:
        super().__init__(model, tokenizer, preprocess, name)
        vc = self.config.vision_config
        mode = getattr(self.config, "spatial_pool_mode", "average")
        if mode not in ("average", "max"):
            raise UnsupportedModelError(f"spatial_pool_mode {mode!r} is learned; longvid can only re-pool average/max")
        self.pooling_op = mode
        size = preprocess.get("crop_size") or preprocess.get("size") or {}
        self.image_size = int(size.get("height") or size.get("shortest_edge") or vc.image_size)
        self.grid_side = self.image_size // vc.patch_size
        self.mean = preprocess.get("image_mean", CLIP_MEAN)
        self.std = preprocess.get("image_std", CLIP_STD)

    def default_pooling(self) -> Schedule:
        return uniform(int(getattr(self.config, "spatial_pool_stride", 2)))

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        return self.image_size, self.image_size

    def pixels(self, frames: np.ndarray) -> torch.Tensor:
        return square_pixels(frames, self.image_size, self.mean, self.std, self.device, self.dtype)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.model.vision_tower(pixels, output_hidden_states=True)
        feats = select_features(self.config, out.hidden_states, self.config.vision_feature_select_strategy == "default")
        return feats.view(feats.shape[0], self.grid_side, self.grid_side, -1)  # vision width: pooled, then projected

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.model.multi_modal_projector(tokens)

    def prompt_ids(self, question: str) -> tuple[list[int], list[int]]:
        return split_prompt(self.tokenizer, question, self.video_placeholder, self.chat_template)
