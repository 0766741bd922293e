"""Video-LLaVA (``VideoLlavaForConditionalGeneration``), trained on exactly 8 frames.

Preprocessing as its processor: the shorter side to 224, bicubic with antialiasing, a
centre crop to 224x224, CLIP's mean/std. Each frame goes through the CLIP video tower on its
own (transformers' port reshapes the video to batch x frames), keeps its CLS token, and is
projected: frames x (16x16 + 1) tokens. longvid pools only the 16x16 grid (the CLS stays)
when asked. Positions are 1-D. Because the tower sees frames one at a time, INTP's
rearrangement cannot change this model's features; beyond 8 frames only the language side
can adapt (``ntk`` with the scale set by the trained length: ``visual_window`` = 8 x 257
tokens). The checkpoint ships no chat template: the prompt is the documented
``USER: <video>\\n{question} ASSISTANT:``, with the Llama tokenizer's BOS.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from longvid.models.checkpoint.processing import PixelSpec, shortest_edge_spec
from longvid.models.families.adapter import FamilyAdapter, PixelBatch, select_features
from longvid.models.families.llava_next_video import clip_preprocess, clip_vision
from longvid.models.inference.budget import Geometry

# the documented prompt (the model card's USER: <video>\n{question} ASSISTANT:), as a template
USER_ASSISTANT = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}{% if part['type'] == 'video' %}<video>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %} {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


class VideoLlavaAdapter(FamilyAdapter):
    model_types = ("video_llava",)
    model_classes: ClassVar[dict[str, str]] = {"video_llava": "VideoLlavaForConditionalGeneration"}
    pooling_op = "average"
    trained_frames = 8
    step_extra_tokens = 1  # the CLS token each frame keeps
    template_note = "USER: <video>\\n{question} ASSISTANT: (the model card's)"
    reference_7b: ClassVar[dict[str, Geometry]] = {
        # Vicuna-7B + LanguageBind CLIP-L/14 @224: 16x16 + CLS per frame
        "video_llava": Geometry(
            layers=32,
            hidden=4096,
            intermediate=11008,
            heads=32,
            kv_heads=32,
            head_dim=128,
            vision_hidden=1024,
            patches_per_frame=257,
            parameters=7_360_000_000,
            grid_side=16,
            step_extra=1,
        ),
    }

    def pixel_spec(self) -> PixelSpec:
        return shortest_edge_spec(self.preprocess, self.config.vision_config.image_size)

    def default_template(self) -> str:
        return USER_ASSISTANT

    def encode(self, batch: PixelBatch) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.model.video_tower(batch.values, output_hidden_states=True)
        feats = self.model.model.multi_modal_projector(select_features(self.config, out.hidden_states, False))
        t = feats.shape[0]
        return feats[:, 1:].reshape(t, *self.native_grid(), -1), feats[:, :1]  # grid, CLS per frame

    @classmethod
    def tiny_config(cls, model_type: str, ids: dict[str, int], text: dict, vision: dict):
        import transformers

        grid = vision["grid"]
        return transformers.VideoLlavaConfig(
            vision_config=clip_vision(vision),
            text_config=transformers.LlamaConfig(**text, eos_token_id=ids["<|im_end|>"], bos_token_id=None),
            image_token_index=ids["<image>"],
            video_token_index=ids["<video>"],
            image_seq_length=grid * grid,
            video_seq_length=8 * (grid * grid + 1),
            tie_word_embeddings=False,
        )

    @classmethod
    def tiny_preprocess(cls, side: int, patch: int) -> dict:
        return clip_preprocess(side)
