"""Tiny randomly initialised models of each supported family, built offline from config
objects, and saved as complete checkpoint folders (weights, config, tokenizer, preprocessor
config) that ``longvid.load`` reads exactly as it reads a real checkpoint.

The tokenizer is word-level over a small vocabulary plus each family's special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from longvid.errors import UnsupportedModelError

FAMILIES = ("llava_onevision", "qwen2_vl", "qwen2_5_vl", "llava_next_video", "video_llava")

CHAT_SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
FAMILY_SPECIALS = {
    "llava_onevision": ["<image>", "<video>"],
    "qwen2_vl": ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
    "qwen2_5_vl": ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
    "llava_next_video": ["<image>", "<video>"],
    "video_llava": ["<image>", "<video>"],
}
WORDS = (  # noqa: SIM905 (one word list reads better as text)
    "user assistant system what which how many is the a an of in on "
    "at to and or yes no colour color shape object marker first second came "
    "before after time times video frame red green blue yellow purple orange cyan pink "
    "white black square circle triangle diamond appears moves left right up down still one "
    "two three four five six seven eight nine ten answer question option A B "
    "C D E . , ? : ( ) does letter with"
).split()


def build_tokenizer(family: str):
    """A word-level fast tokenizer: [PAD] [UNK], chat and family specials, then WORDS."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", *CHAT_SPECIALS, *FAMILY_SPECIALS[family]]
    vocab = {tok: i for i, tok in enumerate([*specials, *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        eos_token="<|im_end|>",
        additional_special_tokens=[*CHAT_SPECIALS, *FAMILY_SPECIALS[family]],
    )


def _text_kwargs(vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, max_positions: int) -> dict:
    return dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
    )


def build(
    family: str,
    *,
    grid: int = 8,
    patch: int = 4,
    vision_hidden: int = 32,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 32768,
    rope_theta: float = 10000.0,
    seed: int = 0,
):
    """(model, tokenizer, preprocessor config) for a tiny random model of ``family``.

    ``grid``: patches per side of one frame (LLaVA-OneVision: 27 for the real geometry);
    for Qwen2-VL, frames are resized to ``grid * patch`` pixels a side.
    """
    import transformers

    if family not in FAMILIES:
        raise UnsupportedModelError(f"no tiny builder for {family!r}; choose from {', '.join(FAMILIES)}")
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(family)
    ids = lambda t: tokenizer.convert_tokens_to_ids(t)  # noqa: E731
    text = _text_kwargs(len(tokenizer), hidden, layers, heads, kv_heads, max_positions)
    head_dim = hidden // heads
    if family == "llava_onevision":
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": rope_theta}
        vision = transformers.SiglipVisionConfig(
            hidden_size=vision_hidden,
            intermediate_size=2 * vision_hidden,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=grid * patch,
            patch_size=patch,
        )
        config = transformers.LlavaOnevisionConfig(
            vision_config=vision,
            text_config=transformers.Qwen2Config(**text, eos_token_id=ids("<|im_end|>")),
            image_token_id=ids("<image>"),
            video_token_id=ids("<video>"),
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
            image_grid_pinpoints=[[grid * patch, grid * patch]],
            tie_word_embeddings=False,
        )
        model = transformers.LlavaOnevisionForConditionalGeneration(config)
        side = grid * patch
        preprocess = {
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "size": {"height": side, "width": side},
        }
    elif family in ("llava_next_video", "video_llava"):
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": rope_theta}
        vision = transformers.CLIPVisionConfig(
            hidden_size=vision_hidden,
            intermediate_size=2 * vision_hidden,
            num_hidden_layers=3,  # the default feature layer is -2
            num_attention_heads=2,
            image_size=grid * patch,
            patch_size=patch,
            projection_dim=vision_hidden,
        )
        text_config = transformers.LlamaConfig(**text, eos_token_id=ids("<|im_end|>"), bos_token_id=None)
        if family == "llava_next_video":
            config = transformers.LlavaNextVideoConfig(
                vision_config=vision,
                text_config=text_config,
                image_token_id=ids("<image>"),
                video_token_id=ids("<video>"),
                image_grid_pinpoints=[[grid * patch, grid * patch]],
                spatial_pool_mode="average",
                spatial_pool_stride=2,
                tie_word_embeddings=False,
            )
            model = transformers.LlavaNextVideoForConditionalGeneration(config)
        else:
            config = transformers.VideoLlavaConfig(
                vision_config=vision,
                text_config=text_config,
                image_token_index=ids("<image>"),
                video_token_index=ids("<video>"),
                image_seq_length=grid * grid,
                video_seq_length=8 * (grid * grid + 1),
                tie_word_embeddings=False,
            )
            model = transformers.VideoLlavaForConditionalGeneration(config)
        side = grid * patch
        preprocess = {
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "crop_size": {"height": side, "width": side},
        }
    else:
        half = head_dim // 2
        section = [half - 2 * (half // 3), half // 3, half // 3]  # t, h, w; sums to head_dim / 2
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": rope_theta, "mrope_section": section}
        if family == "qwen2_vl":
            vision = dict(
                depth=2, embed_dim=vision_hidden, hidden_size=hidden, num_heads=2, mlp_ratio=2, patch_size=patch,
                spatial_merge_size=2, temporal_patch_size=2,
            )  # fmt: skip
            cls, cfg_cls = transformers.Qwen2VLForConditionalGeneration, transformers.Qwen2VLConfig
        else:
            vision = dict(
                depth=2, hidden_size=vision_hidden, out_hidden_size=hidden, intermediate_size=2 * vision_hidden,
                num_heads=2, patch_size=patch, spatial_merge_size=2, temporal_patch_size=2,
                window_size=4 * patch, fullatt_block_indexes=[1], tokens_per_second=2,
            )  # fmt: skip
            cls, cfg_cls = transformers.Qwen2_5_VLForConditionalGeneration, transformers.Qwen2_5_VLConfig
        config = cfg_cls(
            text_config={**text, "eos_token_id": ids("<|im_end|>"), "bos_token_id": None},
            vision_config=vision,
            image_token_id=ids("<|image_pad|>"),
            video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"),
            vision_end_token_id=ids("<|vision_end|>"),
        )
        model = cls(config)
        pixels = (grid * patch) ** 2
        preprocess = {
            "patch_size": patch,
            "merge_size": 2,
            "temporal_patch_size": 2,
            "min_pixels": pixels,
            "max_pixels": pixels,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
        }
    return model.eval(), tokenizer, preprocess


def save(family: str, path: str | Path, **sizes) -> Path:
    """Build a tiny ``family`` model and write it as a checkpoint folder."""
    path = Path(path)
    model, tokenizer, preprocess = build(family, **sizes)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps(preprocess, indent=1))
    return path
