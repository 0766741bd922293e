"""The bundled testbed model: loads as the default, answers the README's question, carries a
card, and scores on fresh probe seeds at its training length as its card says."""

from __future__ import annotations

import json

import pytest

from longvid.cli import main
from longvid.models import load
from longvid.probes.runner import run_probe
from longvid.testbed import default_model_path
from longvid.testbed.sample import QUESTION, default_sample, sample_scene


def test_default_model_is_the_testbed(testbed):
    assert testbed.adapter.name == str(default_model_path())
    # W_v counts every visual token of the trained 16 frames: 16 x 8 x 8 and the newline
    assert testbed.trained_frames == 16 and testbed.visual_window((8, 8)) == 257
    card = json.loads((default_model_path() / "card.json").read_text())
    assert card["visual_window"] == 257 and len(card["stages"]) == 2
    for stage in card["stages"]:  # each stage ran to its end
        assert stage["history"][-1]["step"] == stage["train_config"]["steps"]
    # the card's accuracy: 400 fresh items per task through the probe path, the goal is 95 %
    assert {t: (a["n"], a["accuracy"] >= 0.95) for t, a in card["accuracy"].items()} == {
        t: (400, True) for t in ("needle", "count", "order")
    }


def test_readme_main_command_answers_the_sample(capsys):
    _, answer = sample_scene()
    code = main(["ask", str(default_sample()), QUESTION, "--compare", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and answer == "pink"
    # the README's table, row by row: the truth is pink; as trained (16 frames) the testbed says
    # purple; at 256 frames unmodified it repeats itself, with visual-yarn it says purple, and
    # with visual-yarn + progressive pooling pink
    got = [
        (r["frames"], r["extend"], r["pooling"].split("(")[0], r["visual_tokens"], round(r["scale"], 2)) for r in rows
    ]
    assert got == [
        (16, "none", "uniform", 257, 1.0),
        (256, "none", "uniform", 4097, 1.0),
        (256, "visual-yarn", "uniform", 4097, 15.94),
        (256, "visual-yarn", "progressive", 1793, 6.98),
    ]
    answers = [r["answer"] for r in rows]
    assert answers[0] == "purple" and set(answers[1].split()) == {"purple"} and answers[2:] == ["purple", "pink"]


@pytest.mark.parametrize("task", ["needle", "count", "order"])
def test_every_task_at_training_length_on_fresh_seeds(testbed, task):
    records = list(run_probe(testbed, task, [16], samples=40, seed=7))
    accuracy = sum(r.correct for r in records) / len(records)
    assert accuracy >= 0.95, accuracy  # the card: 98-100 % on 400 items each


def test_card_command(capsys):
    assert main(["testbed", "card"]) == 0
    out = capsys.readouterr().out
    assert "held-out accuracy" in out and "reproduce with: longvid testbed train" in out


def test_continued_training_stage(tmp_path):
    """A stage that starts from a checkpoint, on chosen tasks and forms with sampling weights."""
    import json

    import torch

    from longvid.testbed import default_model_path
    from longvid.testbed.train import TrainConfig, train

    cfg = TrainConfig(
        init=str(default_model_path()), steps=2, batch=2, frames=(4,), tasks=("count", "order"),
        task_weights=(0.0, 1.0), forms=("short",), first_task_steps=0, eval_every=2, eval_items=2, seed=3,
    )  # fmt: skip
    last = train(cfg, tmp_path / "tb", log=lambda *_: None)
    assert set(last) == {"step", "minutes", "loss", "count/short", "order/short"}
    card = json.loads((tmp_path / "tb" / "card.json").read_text())
    assert card["train_config"]["init"] == str(default_model_path()) and card["parameters"] == 599488
    from safetensors.torch import load_file

    new = load_file(str(tmp_path / "tb" / "model.safetensors"))
    old = load_file(str(default_model_path() / "model.safetensors"))
    assert set(new) == set(old) and any(not torch.equal(new[k], old[k]) for k in old)  # it started there, and moved


def test_two_stage_recipe(tmp_path):
    """`longvid testbed train`'s recipe in miniature: from scratch, then a continuation from
    stage 1 (kept beside the output), one card with both stages and the final accuracy."""
    from longvid.errors import InvalidRequestError
    from longvid.testbed.train import TrainConfig, recipe, train_recipe

    scratch, polish = recipe(seed=0, threads=1)
    assert (scratch.steps, scratch.init, polish.steps, polish.task_weights) == (5000, None, 1500, (1, 1, 4))
    tiny = dict(steps=2, batch=2, frames=(4,), eval_every=2, eval_items=2, first_task_steps=0)
    stages = (TrainConfig(seed=5, **tiny), TrainConfig(seed=6, task_weights=(0, 0, 1), ramp=0.0, **tiny))
    card = train_recipe(tmp_path / "tb", stages=stages, final_items=4, log=lambda *_: None)
    assert (tmp_path / "tb.stage1" / "model.safetensors").exists()
    assert [st["train_config"]["init"] for st in card["stages"]] == [None, "stage 1"]
    assert card["command"] == "longvid testbed train --seed 5 --threads 1"
    assert set(card["accuracy"]) == {"needle", "count", "order"} and card["accuracy"]["order"]["n"] == 4
    saved = json.loads((tmp_path / "tb" / "card.json").read_text())
    assert saved == card
    # a finished two-stage checkpoint is not a stage 1: continuing from it would train twice
    with pytest.raises(InvalidRequestError, match="not a stage-1 checkpoint"):
        train_recipe(tmp_path / "again", stage1=tmp_path / "tb", stages=stages, final_items=4, log=lambda *_: None)
    with pytest.raises(InvalidRequestError, match=r"no card\.json"):
        train_recipe(tmp_path / "again", stage1=tmp_path, stages=stages, final_items=4, log=lambda *_: None)
    assert main(["testbed", "card", "--model", str(tmp_path / "tb")]) == 0


def test_device_map_auto_loads_through_accelerate(testbed):

    split = load(None, device_map="auto")  # accelerate places it (the CPU here)
    assert str(split.adapter.device) == "cpu"
    video = str(default_sample())
    assert split.ask(video, QUESTION).token_ids == testbed.ask(video, QUESTION).token_ids


@pytest.mark.parametrize("extend", ["visual-yarn", "visual-pi", "yarn", "linear"])
def test_scale_is_exactly_one_at_the_trained_frame_count(testbed, extend):
    """W_v counted the frames' tokens but not the newline after them once: every visual mode
    rescaled the testbed at the very length it was trained on (scale 1.0039)."""
    answer = testbed.ask(default_sample(), QUESTION, frames=16, extend=extend, max_new_tokens=1)
    assert answer.report.visual_tokens == answer.report.visual_window == 257
    assert answer.report.scale == 1.0
