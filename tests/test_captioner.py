"""Video-to-text: frozen encoder + frozen causal LM, Perceiver resampler, gated cross-attention."""

from __future__ import annotations

import pytest
import torch

from longvid.encoder.captioner import (
    CaptionerConfig,
    GatedCrossAttentionLayer,
    PerceiverResampler,
    VideoCaptioner,
    load_captioner,
    rouge_l,
    train_captioner,
)
from longvid.encoder.model import VideoViT, config_for

WORDS = ["[PAD]", "[UNK]", "<s>", "</s>", "a", ",", "then", "appears", "moves", "left", "right", "up", "down",
         "red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink", "white", "black",
         "square", "circle", "triangle", "diamond"]  # fmt: skip


def word_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                                   eos_token="</s>")  # fmt: skip


def tiny_lm(kind="qwen2"):
    torch.manual_seed(0)
    if kind == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        return GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(WORDS), n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=2, eos_token_id=3
            )
        )
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      bos_token_id=2, eos_token_id=3, pad_token_id=0)  # fmt: skip
    return Qwen2ForCausalLM(cfg)


def encoder():
    torch.manual_seed(1)
    return VideoViT(config_for("micro")).eval()


def pixels(b=2, frames=8):
    return torch.rand(b, frames, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1


CAPTIONS = ["a red square moves left , then a blue circle appears", "a green diamond appears"]


@pytest.mark.parametrize("kind", ["qwen2", "gpt2"])
def test_gates_at_zero_make_the_captioner_the_frozen_lm(kind):
    lm, tok = tiny_lm(kind), word_tokenizer()
    model = VideoCaptioner(encoder(), lm, tok, CaptionerConfig(latents=8, every=2, heads=2))
    assert len(model.gated) == (2 if kind == "qwen2" else 1)  # layers 0 and 2 of 3; layer 0 of 2
    batch = model.caption_batch(CAPTIONS)
    reference = lm.__class__(lm.config)
    reference.load_state_dict(_plain_lm_state(lm))
    reference.eval()
    with torch.no_grad():
        expected = reference(**batch).loss
        got = model(pixels(), CAPTIONS)
    torch.testing.assert_close(got, expected)
    with torch.no_grad():  # opened gates: the video now changes the loss
        for g in model.gated:
            g.attn_gate.fill_(1.0)
        assert not torch.allclose(model(pixels(), CAPTIONS), expected)


def _plain_lm_state(lm) -> dict:
    """The wrapped LM's weights under the names the plain class uses (drop '.layer', the xattn)."""
    out = {}
    for k, v in lm.state_dict().items():
        if ".xattn." in k:
            continue
        out[k.replace(".layer.", ".", 1) if ".layer." in k else k] = v
    return out


def test_only_the_resampler_and_gated_layers_train():
    model = VideoCaptioner(encoder(), tiny_lm(), word_tokenizer(), CaptionerConfig(latents=8, heads=2))
    frozen = {
        n: p.clone() for n, p in model.named_parameters() if n.startswith(("encoder.", "lm.")) and ".xattn." not in n
    }
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    for _ in range(3):
        model(pixels(), CAPTIONS).backward()
        opt.step()
        opt.zero_grad()
    after = dict(model.named_parameters())
    assert all(torch.equal(p, after[n]) for n, p in frozen.items())
    assert all(float(g.attn_gate.detach()) != 0 for g in model.gated)  # the gates opened


def test_resampler_gives_fixed_latents_for_any_token_count():
    r = PerceiverResampler(16, 32, latents=5, layers=2, heads=4)
    assert r(torch.randn(2, 7, 16)).shape == (2, 5, 32) and r(torch.randn(2, 300, 16)).shape == (2, 5, 32)
    g = GatedCrossAttentionLayer(32, 4)
    h = torch.randn(2, 6, 32)
    assert torch.equal(g(h, torch.randn(2, 5, 32)), h)  # gates at 0: identity


def test_train_save_load_and_caption(tmp_path):

    from longvid.encoder.data import write_synthetic_set
    from longvid.encoder.train import EncoderTrainConfig, train
    from tests.support import save_tiny_bert

    # a frozen encoder checkpoint (2 training steps are enough: it only has to exist)
    save_tiny_bert(tmp_path / "bert", max_positions=512)
    manifest = write_synthetic_set(tmp_path / "set", n=4, frames=8, size=32)
    train(EncoderTrainConfig(manifest=str(manifest), out=str(tmp_path / "enc"), text=str(tmp_path / "bert"),
                             frames=8, steps=2, batch=4, workers=0), progress=False)  # fmt: skip
    lm, tok = tiny_lm(), word_tokenizer()
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    cfg = CaptionerConfig(latents=8, heads=2, max_new_tokens=6)
    losses = train_captioner(tmp_path / "enc", tmp_path / "lm", manifest, tmp_path / "cap", steps=30, batch=4,
                             lr=3e-3, config=cfg, progress=False)  # fmt: skip
    assert len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5])  # it learns the captions
    model, meta = load_captioner(tmp_path / "cap")
    assert meta["frames"] == 8
    from longvid.encoder.data import read_manifest
    from longvid.encoder.train import load_pixels

    clips, _ = read_manifest(manifest)
    px = torch.stack([load_pixels(c, 8, 32) for c in clips])
    captions = model.generate(px)
    assert len(captions) == 4 and all(isinstance(c, str) for c in captions)
    assert all(len(c.split()) <= 6 for c in captions)
    assert all(set(c.split()) <= set(WORDS) for c in captions), captions  # words, spaced


def test_rouge_l():
    pytest.importorskip("rouge_score")
    assert rouge_l(["a red square appears"], ["a red square appears"]) == 1.0
    # LCS "a red appears" = 3 of 4 words both ways: F1 0.75
    assert rouge_l(["a red circle appears"], ["a red square appears"]) == pytest.approx(0.75)
