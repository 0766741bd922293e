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
from longvid.models.checkpoint.registry import adapter_class
from longvid.models.families import FAMILIES

CHAT_SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
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

    family_specials = list(adapter_class(family).tiny_special_tokens)
    specials = ["[PAD]", "[UNK]", *CHAT_SPECIALS, *family_specials]
    vocab = {tok: i for i, tok in enumerate([*specials, *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        eos_token="<|im_end|>",
        additional_special_tokens=[*CHAT_SPECIALS, *family_specials],
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
    frames are ``grid * patch`` pixels a side.
    """
    import transformers

    if family not in FAMILIES:
        raise UnsupportedModelError(f"no tiny builder for {family!r}; choose from {', '.join(FAMILIES)}")
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(family)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in [*CHAT_SPECIALS, *adapter_class(family).tiny_special_tokens]}
    text = _text_kwargs(len(tokenizer), hidden, layers, heads, kv_heads, max_positions)
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": rope_theta}
    adapter = adapter_class(family)
    config = adapter.tiny_config(family, ids, text, {"grid": grid, "patch": patch, "hidden": vision_hidden})
    model = getattr(transformers, adapter.model_classes[family])(config)
    side = grid * patch
    return model.eval(), tokenizer, adapter.tiny_preprocess(side, patch)


def save(family: str, path: str | Path, **sizes) -> Path:
    """Build a tiny ``family`` model and write it as a checkpoint folder."""
    path = Path(path)
    model, tokenizer, preprocess = build(family, **sizes)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps(preprocess, indent=1))
    return path


def shrink_config(config, hidden: int = 64, heads: int = 2, layers: int = 2, vision_hidden: int = 32):
    """A real checkpoint's config with few, narrow layers and its geometry kept: image size,
    patch, merge and temporal sizes, feature layer, pooling, token ids, vocabulary, RoPE
    type and base (M-RoPE sections scaled to the narrower heads). For random-weight models
    that take exactly the real checkpoint's inputs."""
    import copy

    config = copy.deepcopy(config)
    tc = config.text_config
    head_dim = hidden // heads
    old_head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
    tc.hidden_size, tc.num_attention_heads, tc.num_key_value_heads = hidden, heads, 1
    tc.intermediate_size, tc.num_hidden_layers = 2 * hidden, layers
    if getattr(tc, "head_dim", None):
        tc.head_dim = head_dim
    if getattr(tc, "layer_types", None):
        if "full_attention" in tc.layer_types:  # a hybrid model keeps one full-attention layer
            layers = max(layers, tc.layer_types.index("full_attention") + 1)
            tc.num_hidden_layers = layers
        tc.layer_types = tc.layer_types[:layers]
    if getattr(tc, "max_window_layers", None):
        tc.max_window_layers = min(tc.max_window_layers, layers)
    rope = getattr(tc, "rope_parameters", None) or {}
    if "mrope_section" in rope:  # over the rotary dimensions (a quarter of the head, partial rotary)
        rotary = int(head_dim * float(rope.get("partial_rotary_factor", 1.0)))
        section = [s * head_dim // old_head_dim for s in rope["mrope_section"]]
        section[0] += rotary // 2 - sum(section)
        tc.rope_parameters = {**rope, "mrope_section": section}
    adapter_class(config.model_type).shrink_vision(config, vision_hidden, hidden)  # the family's own rules
    return config


def from_real_config(
    config, seed: int = 0, *, shrink: bool = True, dtype: torch.dtype = torch.float32, device: str = "cpu"
):
    """A random-weight model of ``config``'s family, shrunk by ``shrink_config`` unless
    ``shrink`` is False (a released geometry at full size: bench/gpu.py), built on ``device``
    in ``dtype`` (configs name fp16/bf16; the default is float32)."""
    import transformers

    torch.manual_seed(seed)
    cls = getattr(transformers, adapter_class(config.model_type).model_classes[config.model_type])
    with torch.device(device):
        return cls(shrink_config(config) if shrink else config).to(dtype).eval()
