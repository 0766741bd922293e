"""Qwen3.5 (dense and MoE): a hybrid language model, three Gated DeltaNet layers of every four.
Its full-attention layers' keys and values go to longvid's block cache, the linear layers'
convolution and recurrent states beside them; logits equal transformers' forward (also across
prefill chunks), and a snapshot restores those states exactly, so many questions from one
prefix equal asking each alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import longvid
from longvid.extend.kvcache import BlockKVLayer, cache_bytes

QUESTIONS = ["what colour is the square ?", "which shape came first ?", "how many circles ?"]


@pytest.fixture(scope="module")
def frames_array():
    return np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", ["qwen3_5", "qwen3_5_moe"])
@pytest.mark.parametrize("chunk", [None, 16])
def test_logits_equal_transformers(tiny_models, tiny_checkpoints, frames_array, family, chunk):
    llm = tiny_models[family]
    layout = llm.layout(QUESTIONS[0], llm.encode_video(frames_array, 8), "none")
    logits, cache = llm.prefill(layout, chunk=chunk, all_logits=True)
    inputs = longvid.prepare(tiny_checkpoints[family], frames_array, QUESTIONS[0])
    with torch.inference_mode():
        ref = llm.adapter.model(**inputs).logits[0]
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)
    kinds = [type(layer).__name__ for layer in cache.layers]
    assert kinds.count("BlockKVLayer") == llm.adapter.text_config.layer_types.count("full_attention") >= 1
    assert "LinearAttentionLayer" in kinds


@pytest.mark.parametrize("kv_bits,extend", [(16, "none"), (4, "visual-yarn")])
def test_many_questions_from_one_prefix_equal_asking_alone(tiny_models, frames_array, kv_bits, extend):
    llm = tiny_models["qwen3_5"]
    options = dict(kv_bits=kv_bits, extend=extend, visual_window=24, max_new_tokens=6, prefill_chunk=16)
    together = llm.ask(frames_array, QUESTIONS, **options)
    alone = [llm.ask(frames_array, q, **options) for q in QUESTIONS]
    assert [a.token_ids for a in together] == [a.token_ids for a in alone]
    assert together[0].report.shared_prefix_tokens > 0


def test_a_snapshot_restores_the_recurrent_states_exactly(tiny_models, frames_array):
    from longvid.models.inference import generation

    llm = tiny_models["qwen3_5"]
    prefix, rests = generation.lay_out_shared(llm.adapter, QUESTIONS, llm.encode_video(frames_array, 8), "none", 64)
    _, cache = llm.prefill(prefix, chunk=16)
    snapshot = cache.snapshot()
    linear = next(layer for layer in cache.layers if not isinstance(layer, BlockKVLayer))
    saved = {"conv": linear.conv_states[0].clone(), "recurrent": linear.recurrent_states[0].clone()}
    before = cache_bytes(cache)
    logits, _ = llm.prefill(rests[0], chunk=16, cache=cache)
    llm.decode(logits, cache, generation.joined(prefix, rests[0]), 4)
    assert not torch.equal(linear.recurrent_states[0], saved["recurrent"])  # the question moved it
    cache.restore(snapshot)
    assert torch.equal(linear.conv_states[0], saved["conv"])
    assert torch.equal(linear.recurrent_states[0], saved["recurrent"])
    assert cache_bytes(cache) == before


def test_the_real_folder_and_a_random_weight_model_of_its_config(hub_dirs, odd_videos, capsys):
    from longvid.models.checkpoint.files import read_checkpoint
    from longvid.models.checkpoint.registry import from_model
    from longvid.models.checkpoint.tiny import from_real_config
    from tests.support import run

    folder = hub_dirs["qwen3_5"]
    code, out, err = run(capsys, "inspect", "--model", folder, "--json")
    assert code == 0 and '"family": "qwen3_5"' in out, err
    inputs = longvid.prepare(folder, odd_videos["landscape"], "What happens?", frames=8)
    tokenizer = read_checkpoint(folder).tokenizer
    text = tokenizer.decode(inputs["input_ids"][0])
    assert text.count("<|vision_start|>") == 4 and " seconds><|vision_start|>" in text  # one group per 2 frames
    files = read_checkpoint(folder)
    llm = from_model(from_real_config(files.config), files)
    types = llm.adapter.text_config.layer_types
    assert "full_attention" in types and "linear_attention" in types  # the pattern kept when shrunk
    assert llm.adapter.rotary_dim() == llm.adapter.head_dim() // 4
    frames = np.random.default_rng(1).integers(0, 255, (4, 64, 96, 3), dtype=np.uint8)
    answer = llm.ask(frames, "what ?", max_new_tokens=2, extend="visual-yarn", visual_window=8)
    assert answer.report.scale > 1 and answer.report.kv_cache_bytes > 0


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_5"])
def test_eval_and_the_lmms_eval_plugin_run_the_new_families(tiny_checkpoints, tmp_path, family):
    """The tiny checkpoints through a benchmark run (a video's questions from one prefix) and
    through lmms-eval's generate_until: each answer as asking it alone."""
    from longvid.evals.answerers import model_answerer
    from longvid.evals.fixtures import write_fixture
    from longvid.evals.lmms_plugin import LongvidRequests
    from longvid.evals.runner import run_eval
    from longvid.models import load
    from tests.support import SAMPLE
    from tests.test_lmms_eval import Request

    llm = load(tiny_checkpoints[family])
    data = write_fixture("videomme", tmp_path / "vm", n=2, frames=8)
    summary = run_eval("videomme", data, tmp_path / "r.jsonl", model_answerer(llm, frames=8), progress=False)
    assert summary["items"] == 2 and summary["failed"] == 0
    plugin = LongvidRequests(llm=llm, frames="8")
    plugin.task_dict = {"t": {"test": [{"video": str(SAMPLE)}]}}
    ((text, counts),) = plugin.generate_until([Request("what colour ?", {"max_new_tokens": 3}, 0)])
    alone = llm.ask(str(SAMPLE), "what colour ?", frames=8, max_new_tokens=3)
    assert text == alone.text and counts["input_tokens"] == alone.report.prompt_tokens
