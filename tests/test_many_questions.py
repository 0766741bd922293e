"""Several questions about one video: one encoding, one prefill of what the questions share,
and each answer equal to asking that question alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from longvid.errors import InvalidRequestError

QUESTIONS = ["what colour is the square ?", "which shape came first ?", "how many circles ?"]


@pytest.fixture(scope="module")
def video():
    return np.random.default_rng(5).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_5_vl", "video_llava"])
@pytest.mark.parametrize("kv_bits,extend", [(16, "none"), (4, "visual-yarn")])
def test_each_answer_equals_asking_alone(tiny_models, video, family, kv_bits, extend):
    llm = tiny_models[family]
    options = dict(kv_bits=kv_bits, extend=extend, visual_window=64, max_new_tokens=6, prefill_chunk=64)
    together = llm.ask(video, QUESTIONS, **options)
    alone = [llm.ask(video, q, **options) for q in QUESTIONS]
    assert [a.token_ids for a in together] == [a.token_ids for a in alone]
    prefix = together[0].report.shared_prefix_tokens
    assert prefix > together[0].report.visual_tokens  # the video and the text before it, once
    assert all(a.report.shared_prefix_tokens == prefix for a in together)
    assert [a.report.prompt_tokens for a in together] == [a.report.prompt_tokens for a in alone]
    assert "prefill_shared" in together[0].report.seconds


@pytest.mark.parametrize("family", ["qwen2_vl", "llava_onevision"])
def test_a_quantized_cache_restored_from_its_snapshot_equals_asking_alone(tiny_models, video, family):
    """4-bit blocks of 16 tokens: the prefix ends mid-block, the questions and the decoding
    cross block boundaries (blocks are quantized as they fill), and a question asked after
    another (restored from the snapshot) sees exactly the cache it would see alone."""
    from longvid.extend.kvcache import make_cache
    from longvid.models import generation

    llm = tiny_models[family]
    tc = llm.adapter.text_config
    whole = llm.layout(QUESTIONS[1], llm.encode_video(video, frames=8), "visual-pi", visual_window=16)
    alone_logits, alone_cache = llm.prefill(whole, kv_bits=4, chunk=16, cache=make_cache(4, tc, block=16, group=16))
    alone_tokens = llm.decode(alone_logits, alone_cache, whole, 6)
    prefix, rests = generation.lay_out_shared(
        llm.adapter, QUESTIONS, llm.encode_video(video, frames=8), "visual-pi", 16
    )
    assert prefix.length % 16  # the shared prefix ends inside a block
    _, cache = llm.prefill(prefix, kv_bits=4, chunk=16, cache=make_cache(4, tc, block=16, group=16))
    snapshot = cache.snapshot()
    first = generation.Layout(**{**rests[0].__dict__})
    logits, _ = llm.prefill(first, kv_bits=4, chunk=16, cache=cache)  # another question, and its answer
    joined = lambda rest: replace(rest, positions=torch.cat([prefix.positions, rest.positions], -1))  # noqa: E731
    llm.decode(logits, cache, joined(first), 6)
    assert cache.layers[0].blocked_tokens > snapshot[0][1]  # it filled blocks past the snapshot
    cache.restore(snapshot)
    logits, _ = llm.prefill(rests[1], kv_bits=4, chunk=16, cache=cache)
    torch.testing.assert_close(logits[-1], alone_logits[-1], rtol=1e-5, atol=1e-5)
    assert llm.decode(logits, cache, joined(rests[1]), 6) == alone_tokens
    assert torch.equal(torch.cat([prefix.positions, rests[1].positions], -1), whole.positions)


def test_a_template_that_asks_before_the_video_prefills_each_question(video):
    from longvid.models import load

    testbed = load(None)  # its template states the question before the video as well
    together = testbed.ask(video, QUESTIONS[:2], max_new_tokens=3)
    assert all(a.report.shared_prefix_tokens == 0 for a in together)
    assert [a.token_ids for a in together] == [testbed.ask(video, q, max_new_tokens=3).token_ids for q in QUESTIONS[:2]]


def test_language_window_modes_beyond_their_window_do_not_share(tiny_models, video, monkeypatch):
    # linear's scale is the whole prompt's length over W_l, so it differs with the question
    from longvid.models import generation

    llm = tiny_models["llava_onevision"]
    monkeypatch.setattr(llm.adapter, "language_window", lambda: 64)  # prompts here are ~70-80 tokens
    visual = llm.encode_video(video, frames=8)
    questions = ["a ?", "a much longer question than that one , with more words in it ?"]
    assert generation.lay_out_shared(llm.adapter, questions, visual, "linear", 16) is None
    together = llm.ask(video, questions, extend="linear", max_new_tokens=3)
    assert all(a.report.shared_prefix_tokens == 0 for a in together)  # one prefill per question
    assert together[0].report.scale != together[1].report.scale
    alone = [llm.ask(video, q, extend="linear", max_new_tokens=3).token_ids for q in questions]
    assert [a.token_ids for a in together] == alone


def test_bad_questions(tiny_models, video):
    with pytest.raises(InvalidRequestError, match="needs a question"):
        tiny_models["llava_onevision"].ask(video, [])
