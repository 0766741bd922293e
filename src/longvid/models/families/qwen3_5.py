"""Qwen3.5 (``Qwen3_5ForConditionalGeneration``; the MoE variant differs only in its config).

Natively multimodal, with Qwen3-VL's video path (its processor is ``Qwen3VLProcessor``: the
same budget over all frames, timestamps as text, per-group M-RoPE; no DeepStack) and a hybrid
language model: of every four layers three are Gated DeltaNet (linear attention: a short
causal convolution and a fixed-size recurrent state per layer) and one is full attention
with a gated output and partial rotary (a quarter of head_dim 256).

Only the full-attention layers have keys and values: longvid's block KV cache (blocked,
quantized, attended blockwise) holds those, and transformers' linear-attention cache layers
hold the convolution and recurrent states beside them in the same cache
(``extend.kvcache.make_cache`` reads ``layer_types``). A snapshot copies those states, since
they are updated in place, so many questions and follow-ups from one prefix restore exactly.
The KV cache is a quarter of the layers: at long video the memory picture is mostly the
vision stage and one prefill chunk.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from longvid.models.families.qwen3_vl import Qwen3VLAdapter
from longvid.models.inference.budget import Geometry


class Qwen35Adapter(Qwen3VLAdapter):
    model_types = ("qwen3_5", "qwen3_5_moe")
    model_classes: ClassVar[dict[str, str]] = {
        "qwen3_5": "Qwen3_5ForConditionalGeneration",
        "qwen3_5_moe": "Qwen3_5MoeForConditionalGeneration",
    }
    reference_7b: ClassVar[dict[str, Geometry]] = {}

    def rotary_dim(self) -> int:
        """Rotary dimensions per head: head_dim x ``partial_rotary_factor`` (64 of 256)."""
        factor = float((self.text_config.rope_parameters or {}).get("partial_rotary_factor", 1.0))
        return int(self.head_dim() * factor)

    def split_visual(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return tokens, None  # no DeepStack

    def encode(self, batch) -> torch.Tensor:
        gt, gh, gw = batch.grid_thw
        grid = torch.tensor([batch.grid_thw], device=batch.values.device)
        merged = self.model.model.visual(batch.values, grid_thw=grid).pooler_output
        return merged.view(gt, gh // self.merge, gw // self.merge, -1)

    @classmethod
    def tiny_config(cls, model_type: str, ids: dict[str, int], text: dict, vision: dict):
        import transformers

        heads = text["num_attention_heads"]
        head_dim = 2 * text["hidden_size"] // heads  # wider heads, a quarter of them rotary
        rotary = head_dim // 4
        half = rotary // 2
        section = [half - 2 * (half // 3), half // 3, half // 3]
        rope = {**text["rope_parameters"], "mrope_section": section, "mrope_interleaved": True,
                "partial_rotary_factor": 0.25}  # fmt: skip
        layers = max(4, text["num_hidden_layers"])
        text_config = {
            **{k: v for k, v in text.items() if k != "rope_parameters"},
            "num_hidden_layers": layers,
            "head_dim": head_dim,
            "rope_parameters": rope,
            "layer_types": ["linear_attention" if (i + 1) % 4 else "full_attention" for i in range(layers)],
            "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": 16,
            "linear_value_head_dim": 16,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
            "eos_token_id": ids["<|im_end|>"],
        }
        vision_config = dict(
            depth=2, hidden_size=vision["hidden"], intermediate_size=2 * vision["hidden"], num_heads=2,
            patch_size=vision["patch"], spatial_merge_size=2, temporal_patch_size=2,
            out_hidden_size=text["hidden_size"], num_position_embeddings=64,
        )  # fmt: skip
        kwargs = dict(
            text_config=text_config,
            vision_config=vision_config,
            image_token_id=ids["<|image_pad|>"],
            video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"],
        )
        if model_type == "qwen3_5_moe":
            moe = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=text["hidden_size"],
                       shared_expert_intermediate_size=text["hidden_size"])  # fmt: skip
            kwargs["text_config"] = {**text_config, **moe}
            kwargs["text_config"].pop("intermediate_size", None)
            return transformers.Qwen3_5MoeConfig(**kwargs)
        return transformers.Qwen3_5Config(**kwargs)

    @classmethod
    def shrink_vision(cls, config, vision_hidden: int, hidden: int) -> None:
        vc = config.vision_config
        vc.depth, vc.num_heads = 2, 2
        vc.hidden_size, vc.intermediate_size, vc.out_hidden_size = vision_hidden, 2 * vision_hidden, hidden
