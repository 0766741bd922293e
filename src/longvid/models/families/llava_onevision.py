"""LLaVA-OneVision / LLaVA-Video (``LlavaOnevisionForConditionalGeneration``).

Preprocessing as its video processor: every frame resized to ``size`` (384x384 for the
released models) whatever its aspect, bicubic with antialiasing, normalised with mean/std
0.5. SigLIP gives a 27x27 grid per frame, projected into the language model's space; the
family's own pooling is bilinear to ceil(27/2) = 14, i.e. 196 tokens a frame, and one
``image_newline`` token closes the video. Positions are 1-D. The released 7B was trained on
at most 32 frames: W_v = 32 x 196 = 6,272.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from longvid.extend.pooling import Schedule, uniform
from longvid.models.checkpoint.processing import PixelSpec, fixed_spec
from longvid.models.families.adapter import FamilyAdapter, PixelBatch, select_features
from longvid.models.inference.budget import Geometry


class LlavaOnevisionAdapter(FamilyAdapter):
    model_types = ("llava_onevision",)
    model_classes: ClassVar[dict[str, str]] = {"llava_onevision": "LlavaOnevisionForConditionalGeneration"}
    pooling_op = "bilinear"
    trained_frames = 32
    reference_7b: ClassVar[dict[str, Geometry]] = {
        # Qwen2-7B + SigLIP-so400m/14 @384: 27x27 patches, bilinear to 14x14, one newline
        "llava_onevision": Geometry(
            layers=28,
            hidden=3584,
            intermediate=18944,
            heads=28,
            kv_heads=4,
            head_dim=128,
            vision_hidden=1152,
            patches_per_frame=729,
            parameters=8_030_000_000,
            grid_side=27,
            video_extra=1,
        ),
    }

    def pixel_spec(self) -> PixelSpec:
        return fixed_spec(self.preprocess, self.config.vision_config.image_size)

    def default_pooling(self) -> Schedule:
        return uniform(2)

    def encode(self, batch: PixelBatch) -> torch.Tensor:
        inner = self.model.model
        out = inner.vision_tower(batch.values, output_hidden_states=True)
        feats = select_features(self.config, out.hidden_states, self.config.vision_feature_select_strategy == "default")
        feats = inner.multi_modal_projector(feats)
        return feats.view(feats.shape[0], *self.native_grid(), -1)  # (t, h, w, d)

    def extra_visual_tokens(self) -> torch.Tensor:
        return self.model.model.image_newline[None]

    def extra_token_count(self) -> int:
        return 1

    @classmethod
    def tiny_config(cls, model_type: str, ids: dict[str, int], text: dict, vision: dict):
        import transformers

        side = vision["grid"] * vision["patch"]
        return transformers.LlavaOnevisionConfig(
            vision_config=transformers.SiglipVisionConfig(
                hidden_size=vision["hidden"], intermediate_size=2 * vision["hidden"], num_hidden_layers=2,
                num_attention_heads=2, image_size=side, patch_size=vision["patch"],
            ),
            text_config=transformers.Qwen2Config(**text, eos_token_id=ids["<|im_end|>"]),
            image_token_id=ids["<image>"],
            video_token_id=ids["<video>"],
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
            image_grid_pinpoints=[[side, side]],
            tie_word_embeddings=False,
        )  # fmt: skip

    @classmethod
    def tiny_preprocess(cls, side: int, patch: int) -> dict:
        return {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": side, "width": side}}
