"""LLaVA-OneVision / LLaVA-Video (``LlavaOnevisionForConditionalGeneration``).

Frames are resized to the vision tower's square input (384x384 for the released models) and
normalised with the checkpoint's mean/std; SigLIP gives a 27x27 grid per frame, projected
into the language model's space; the family's own pooling is bilinear to ceil(27/2) = 14,
i.e. 196 tokens a frame, and one ``image_newline`` token closes the video. Positions are
1-D. The released 7B was trained on at most 32 frames: W_v = 32 x 196 = 6,272.
"""

from __future__ import annotations

import numpy as np
import torch

from longvid.extend.pooling import Schedule, uniform
from longvid.models.base import FamilyAdapter
from longvid.models.prompt import split_prompt


class LlavaOnevisionAdapter(FamilyAdapter):
    model_types = ("llava_onevision",)
    pooling_op = "bilinear"
    trained_frames = 32
    video_placeholder = "<video>"

    def __init__(self, model, tokenizer, preprocess: dict, name: str) -> None:
        super().__init__(model, tokenizer, preprocess, name)
        vc = self.config.vision_config
        size = preprocess.get("size") or {}
        self.image_size = int(size.get("height") or size.get("shortest_edge") or vc.image_size)
        self.grid_side = self.image_size // vc.patch_size
        mean = preprocess.get("image_mean", [0.5, 0.5, 0.5])
        std = preprocess.get("image_std", [0.5, 0.5, 0.5])
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def default_pooling(self) -> Schedule:
        return uniform(2)

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        return self.image_size, self.image_size

    def pixels(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)  # (t, 3, H, W)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic")
        x = (x - self._mean) / self._std
        return x.to(device=self.device, dtype=self.dtype)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        inner = self.model.model
        out = inner.vision_tower(pixels, output_hidden_states=True)
        layer = self.config.vision_feature_layer
        if isinstance(layer, int):
            feats = out.hidden_states[layer]
        else:
            feats = torch.cat([out.hidden_states[i] for i in layer], dim=-1)
        if self.config.vision_feature_select_strategy == "default":
            feats = feats[:, 1:]  # drop CLS
        feats = inner.multi_modal_projector(feats)
        t = feats.shape[0]
        return feats.view(t, self.grid_side, self.grid_side, -1)  # (t, h, w, d)

    def extra_visual_tokens(self) -> torch.Tensor:
        return self.model.model.image_newline[None]

    def prompt_ids(self, question: str) -> tuple[list[int], list[int]]:
        return split_prompt(self.tokenizer, question, self.video_placeholder, self.chat_template)
