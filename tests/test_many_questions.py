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
    from longvid.models.inference import generation

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
    from longvid.models.inference import generation

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


def test_cli_asks_several_questions(capsys, tiny_checkpoints):
    import json

    from tests.support import SAMPLE, run

    model = tiny_checkpoints["llava_onevision"]
    code, out, err = run(capsys, "ask", SAMPLE, "-q", QUESTIONS[0], "-q", QUESTIONS[1], "--model", model,
                         "--frames", 8, "--max-new-tokens", 3, "--json")  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)
    assert [r["question"] for r in rows] == QUESTIONS[:2] and rows[0]["shared_prefix_tokens"] > 0
    code, out, _ = run(capsys, "ask", SAMPLE, "-q", QUESTIONS[0], "-q", QUESTIONS[1], "--model", model,
                       "--frames", 8, "--max-new-tokens", 3)  # fmt: skip
    assert code == 0 and out.count("answer:") == 2 and "prefilled once for 2 questions" in out
    code, _, err = run(capsys, "ask", SAMPLE, "--model", model)
    assert code == 2 and "give a question" in err


def test_eval_asks_the_questions_of_one_video_together(tmp_path):
    import json
    import shutil

    from longvid.evals.benchmarks import load_benchmark
    from longvid.evals.fixtures import write_fixture
    from longvid.evals.runner import Shard, read_results, run_eval

    root = write_fixture("videomme", tmp_path / "vm", n=3)
    table = root / "videomme" / "test-00000-of-00001.json"
    rows = json.loads(table.read_text())
    second = [{**r, "question_id": r["question_id"][:-1] + "2", "question": "and which came last ?"} for r in rows]
    table.write_text(json.dumps([x for pair in zip(rows, second, strict=True) for x in pair]))  # 2 per video
    items = load_benchmark("videomme", root)
    assert len(items) == 6

    from longvid.evals.answerers import Answerer

    def one(video, prompt):
        return f"({'ABCD'[len(prompt) % 4]})", {}

    calls = []

    class Together(Answerer):
        def ask(self, video, prompt):
            return one(video, prompt)

        def ask_many(self, video, prompts):
            calls.append((video.name, len(prompts)))
            return [one(video, p) for p in prompts]

    grouped = run_eval("videomme", root, tmp_path / "g.jsonl", Together(), progress=False)
    assert calls == [("vid000.mp4", 2), ("vid001.mp4", 2), ("vid002.mp4", 2)]
    single = run_eval("videomme", root, tmp_path / "s.jsonl", one, progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(read_results(tmp_path / "g.jsonl")) == strip(read_results(tmp_path / "s.jsonl"))
    assert grouped["accuracy"] == single["accuracy"]
    # under torchrun a video's questions stay on one rank
    from longvid.evals import runner

    shutil.rmtree(tmp_path / "r", ignore_errors=True)
    orig, runner._barrier = runner._barrier, lambda: None
    try:
        run_eval("videomme", root, tmp_path / "r" / "r.jsonl", one, shard=Shard(1, 2), progress=False)
    finally:
        runner._barrier = orig
    ids = [r["id"] for r in read_results(tmp_path / "r" / "r.rank1-of-2.jsonl")]
    assert ids == [items[2].id, items[3].id]  # the second video's two questions


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_5_vl"])
def test_a_conversation_reuses_the_video_and_carries_its_turns(tiny_models, video, family, monkeypatch):
    from longvid.models.inference import generation

    llm = tiny_models[family]
    options = dict(frames=8, kv_bits=4, extend="visual-yarn", visual_window=16)
    chat = llm.chat(video, **options)
    first = chat.ask(QUESTIONS[0], max_new_tokens=4)
    assert first.token_ids == llm.ask(video, QUESTIONS[0], max_new_tokens=4, **options).token_ids
    follow = chat.ask(QUESTIONS[1], max_new_tokens=4)
    assert first.report.shared_prefix_tokens == follow.report.shared_prefix_tokens > 0
    assert follow.report.prompt_tokens > first.report.prompt_tokens + 4  # the first turn is in it
    assert chat.history == [(QUESTIONS[0], first.text), (QUESTIONS[1], follow.text)]
    # the same conversation with every prompt prefilled whole gives the same answers
    monkeypatch.setattr(generation, "lay_out_shared", lambda *a, **k: None)
    whole = llm.chat(video, **options)
    assert whole.ask(QUESTIONS[0], max_new_tokens=4).token_ids == first.token_ids
    again = whole.ask(QUESTIONS[1], max_new_tokens=4)
    assert again.token_ids == follow.token_ids and again.report.shared_prefix_tokens == 0
    assert again.report.prompt_tokens == follow.report.prompt_tokens


def test_a_conversation_with_a_template_that_asks_first(video):
    from longvid.models import load

    chat = load(None).chat(video, frames=8)
    answers = [chat.ask(q, max_new_tokens=2) for q in QUESTIONS[:2]]
    assert all(a.report.shared_prefix_tokens == 0 for a in answers) and len(chat.history) == 2
