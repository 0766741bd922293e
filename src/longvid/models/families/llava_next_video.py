"""LLaVA-NeXT-Video (``LlavaNextVideoForConditionalGeneration``).

Preprocessing as its processor: the shorter side resized to ``shortest_edge`` (336), the
longer side in proportion, bicubic with antialiasing, then a centre crop to ``crop_size``
(336x336); CLIP's mean/std. The CLIP tower gives a 24x24 grid, the CLS token is dropped
("default" strategy), the grid is pooled *before* the projector with the checkpoint's
``spatial_pool_mode`` (average, stride 2: 12x12 = 144 tokens a frame), and the projector then
maps each pooled token. Positions are 1-D. The released models were trained on 32 frames.
The prompt is its template's ``USER: <video>\\n{question} ASSISTANT:`` with the Llama
tokenizer's BOS.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from longvid.errors import UnsupportedModelError
from longvid.extend.pooling import Schedule, uniform
from longvid.models.checkpoint.files import CheckpointFiles
from longvid.models.checkpoint.processing import CLIP_MEAN, CLIP_STD, PixelSpec, shortest_edge_spec
from longvid.models.families.adapter import FamilyAdapter, PixelBatch, select_features
from longvid.models.inference.budget import Geometry


class LlavaNextVideoAdapter(FamilyAdapter):
    model_types = ("llava_next_video",)
    model_classes: ClassVar[dict[str, str]] = {"llava_next_video": "LlavaNextVideoForConditionalGeneration"}
    trained_frames = 32
    pooling_op = "average"  # the released configs' spatial_pool_mode; a checkpoint's own is read at load
    reference_7b: ClassVar[dict[str, Geometry]] = {
        # Vicuna-7B + CLIP-L/14 @336: 24x24, average-pooled to 12x12
        "llava_next_video": Geometry(
            layers=32,
            hidden=4096,
            intermediate=11008,
            heads=32,
            kv_heads=32,
            head_dim=128,
            vision_hidden=1024,
            patches_per_frame=576,
            parameters=7_060_000_000,
            grid_side=24,
        ),
    }

    def __init__(self, files: CheckpointFiles, model=None) -> None:
        super().__init__(files, model)
        mode = getattr(self.config, "spatial_pool_mode", "average")
        if mode not in ("average", "max"):
            raise UnsupportedModelError(f"spatial_pool_mode {mode!r} is learned; longvid can only re-pool average/max")
        self.pooling_op = mode

    def pixel_spec(self) -> PixelSpec:
        return shortest_edge_spec(self.preprocess, self.config.vision_config.image_size)

    def default_pooling(self) -> Schedule:
        return uniform(int(getattr(self.config, "spatial_pool_stride", 2)))

    def encode(self, batch: PixelBatch) -> torch.Tensor:
        out = self.model.model.vision_tower(batch.values, output_hidden_states=True)
        feats = select_features(self.config, out.hidden_states, self.config.vision_feature_select_strategy == "default")
        return feats.view(feats.shape[0], *self.native_grid(), -1)  # vision width: pooled, then projected

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.model.multi_modal_projector(tokens)

    @classmethod
    def tiny_config(cls, model_type: str, ids: dict[str, int], text: dict, vision: dict):
        import transformers

        side = vision["grid"] * vision["patch"]
        return transformers.LlavaNextVideoConfig(
            vision_config=clip_vision(vision),
            text_config=transformers.LlamaConfig(**text, eos_token_id=ids["<|im_end|>"], bos_token_id=None),
            image_token_id=ids["<image>"],
            video_token_id=ids["<video>"],
            image_grid_pinpoints=[[side, side]],
            spatial_pool_mode="average",
            spatial_pool_stride=2,
            tie_word_embeddings=False,
        )

    @classmethod
    def shrink_vision(cls, config, vision_hidden: int, hidden: int) -> None:
        super().shrink_vision(config, vision_hidden, hidden)
        config.spatial_pool_out_channels = vision_hidden

    @classmethod
    def tiny_preprocess(cls, side: int, patch: int) -> dict:
        return clip_preprocess(side)


def clip_vision(vision: dict):
    """A tiny CLIP vision config (3 layers: the LLaVA families read layer -2)."""
    import transformers

    return transformers.CLIPVisionConfig(
        hidden_size=vision["hidden"], intermediate_size=2 * vision["hidden"], num_hidden_layers=3,
        num_attention_heads=2, image_size=vision["grid"] * vision["patch"], patch_size=vision["patch"],
        projection_dim=vision["hidden"],
    )  # fmt: skip


def clip_preprocess(side: int) -> dict:
    return {
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "size": {"shortest_edge": side},
        "crop_size": {"height": side, "width": side},
    }
