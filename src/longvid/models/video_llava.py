"""Video-LLaVA (``VideoLlavaForConditionalGeneration``), trained on exactly 8 frames.

Each frame goes through the CLIP video tower on its own (transformers' port reshapes the
video to batch x frames), keeps its CLS token, and is projected: frames x (16x16 + 1)
tokens. longvid pools only the 16x16 grid (the CLS stays) when asked. Positions are 1-D.
Because the tower sees frames one at a time, INTP's rearrangement cannot change this
model's features; beyond 8 frames only the language side can adapt (``ntk`` with the
scale set by the trained length: ``visual_window`` = 8 x 257 tokens).
"""

from __future__ import annotations

import numpy as np
import torch

from longvid.models.base import FamilyAdapter
from longvid.models.llava_next_video import CLIP_MEAN, CLIP_STD, select_features, square_pixels
from longvid.models.prompt import split_prompt


class VideoLlavaAdapter(FamilyAdapter):
    model_types = ("video_llava",)
    pooling_op = "average"
    trained_frames = 8
    video_placeholder = "<video>"
    step_extra_tokens = 1  # the CLS token each frame keeps

    def __init__(self, model, tokenizer, preprocess: dict, name: str) -> None:
        super().__init__(model, tokenizer, preprocess, name)
        vc = self.config.vision_config
        size = preprocess.get("crop_size") or preprocess.get("size") or {}
        self.image_size = int(size.get("height") or size.get("shortest_edge") or vc.image_size)
        self.grid_side = self.image_size // vc.patch_size
        self.mean = preprocess.get("image_mean", CLIP_MEAN)
        self.std = preprocess.get("image_std", CLIP_STD)

    @property
    def language_model(self):
        return self.model.model.language_model

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        return self.image_size, self.image_size

    def pixels(self, frames: np.ndarray) -> torch.Tensor:
        return square_pixels(frames, self.image_size, self.mean, self.std, self.device, self.dtype)

    def encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.model.video_tower(pixels, output_hidden_states=True)
        feats = self.model.model.multi_modal_projector(select_features(self.config, out.hidden_states, False))
        t = feats.shape[0]
        return feats[:, 1:].reshape(t, self.grid_side, self.grid_side, -1), feats[:, :1]  # grid, CLS per frame

    def prompt_ids(self, question: str) -> tuple[list[int], list[int]]:
        return split_prompt(self.tokenizer, question, self.video_placeholder, self.chat_template)
