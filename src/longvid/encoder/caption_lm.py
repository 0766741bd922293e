"""A small causal LM of the captions' language, for the captioner to stay frozen on when no
pretrained LM can be had (offline machines, tests): a word-level tokenizer over the captions'
words and a 2-layer Qwen2 trained on the captions as text (next-token loss), as Flamingo's
frozen LM was pretrained on text alone. ``longvid encoder caption-lm`` writes one."""

from __future__ import annotations

from pathlib import Path

import torch

from longvid.errors import InvalidRequestError
from longvid.progress import Progress, bar


def word_tokenizer(captions: list[str]):
    """A fast tokenizer whose vocabulary is the captions' words (and ``,``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for c in captions for w in c.replace(",", " , ").split()})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "<s>", "</s>", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                                   eos_token="</s>")  # fmt: skip


def pretrain_caption_lm(
    captions: list[str], folder: str | Path, steps: int = 300, seed: int = 0, progress: Progress = False
) -> float:
    """Train the LM on ``captions`` and save it (with its tokenizer) to ``folder``; returns
    the last loss."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if not captions:
        raise InvalidRequestError("no captions to train a language model on")
    if steps < 1:
        raise InvalidRequestError(f"steps must be >= 1 (got {steps})")
    tok = word_tokenizer(captions)
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)  # fmt: skip
    lm = Qwen2ForCausalLM(cfg)
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    rng = torch.Generator().manual_seed(seed)
    loss = torch.tensor(0.0)
    meter = bar(progress, steps, "caption LM", "step", leave=True)
    for _ in range(steps):
        batch = [captions[i] for i in torch.randint(len(captions), (32,), generator=rng).tolist()]
        rows = [[tok.bos_token_id, *tok(c, add_special_tokens=False)["input_ids"], tok.eos_token_id] for c in batch]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tok.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            labels[i, : len(r)] = torch.tensor(r)
        loss = lm(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        meter.update(1)
    meter.close()
    folder = Path(folder)
    lm.save_pretrained(folder)
    tok.save_pretrained(folder)
    return float(loss.detach())
