"""Train the testbed video LLM on the three probe tasks, short videos only (<= 16 frames).

    longvid testbed train [--out DIR] [--threads 1] [--seed 0] [--stage1 DIR]

Two stages (``recipe``): 5,000 steps from scratch on all three tasks, then 1,500 steps at a
third of the learning rate with order drawn four times as often. The first stage alone left
order at 88 % (480 fresh items; its misses were events in adjacent frames: 67 %); the second
brings it to 99 % without costing needle or count (docs/results.md, "Training").

The model is a ``LlavaOnevisionForConditionalGeneration`` (so the adapter and extension
code that serve a 7B checkpoint run unchanged on it): SigLIP on 32x32 frames with 4x4
patches (an 8x8 grid per frame, bilinear-pooled to 4x4 = 16 tokens like the 7B's 27 -> 14),
a 3-layer Qwen2 language model 128 wide, and the word-level tokenizer of
``longvid.models.checkpoint.tiny``. Its language window is set to 512 positions and its visual window
to 16 frames x 16 tokens = 256: what it was trained on.

Training runs the plain transformers forward (the path the exactness tests prove equal to
longvid's own), on batches of one task, form and frame count, with the loss on the answer
only. Frames get mild noise and brightness jitter so that decoded video files (H.264, the
full-video mode) read like the rendered frames. torch uses ``--threads`` threads (1 by
default: on this 2-core machine 2 threads under contention ran 20x slower than 1).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from longvid.errors import InvalidRequestError
from longvid.lr import warmup_cosine
from longvid.probes.tasks import FORMS, TASKS, make_item, render_frames

EVAL_SEED_OFFSET = 1_000_000  # held-out seeds: training never reaches them

# The testbed's chat template states the question before the video and again after it (the
# 7B families put it after only). Causal attention lets a visual token see only what came
# before it: with the question first, each frame's tokens can mark "I am what is asked
# about", and counting becomes summing marks. With the question after only, the 0.6 M model
# stayed at chance on count through every run we tried (docs/results.md, "Training").
QUESTION_AROUND_VIDEO = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}\n{% endif %}{% endfor %}"
    "{% for part in message['content'] %}{% if part['type'] == 'video' %}<video>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class TrainConfig:
    steps: int = 5000
    tasks: tuple[str, ...] = TASKS
    # after the needle-only start, count and order (the harder two) are drawn twice as often
    task_weights: tuple[float, ...] | None = (1, 2, 2)  # sampling weights of ``tasks`` (None: in turn)
    # short answers only: with both forms from the start (3,600 steps) and in a 700-step
    # multiple-choice-only continuation, the multiple-choice forms stayed at chance
    forms: tuple[str, ...] = ("short",)
    init: str | None = None  # continue from this checkpoint instead of a random init
    question_first: bool = True  # chat template QUESTION_AROUND_VIDEO (else ChatML, video first)
    # needle alone first: it teaches finding the one frame that matters and reading it, which
    # count and order build on (with all three mixed from the start, a 2,100-step run stayed
    # at chance on all of them)
    first_task_steps: int = 900
    batch: int = 16
    frames: tuple[int, ...] = (4, 8, 12, 16)
    lr: float = 1.5e-3
    warmup: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 1
    eval_every: int = 350
    eval_items: int = 32
    # curriculum: distractor density ramps 0 -> 0.7 and videos grow from 2 frames to the
    # full lengths over the first ``ramp`` of the steps (from-scratch training otherwise sat
    # at chance for 900 steps: the model must first learn to read one object)
    ramp: float = 0.35
    density: float = 0.7
    # model
    grid: int = 8
    patch: int = 4
    vision_hidden: int = 64
    hidden: int = 128
    layers: int = 3
    heads: int = 4
    kv_heads: int = 2
    language_window: int = 512


def build_model(cfg: TrainConfig):
    from longvid.models.checkpoint.tiny import build

    if cfg.init is not None:
        from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration

        model = LlavaOnevisionForConditionalGeneration.from_pretrained(cfg.init, use_kernels=False)
        tokenizer = AutoTokenizer.from_pretrained(cfg.init)
        preprocess = json.loads((Path(cfg.init) / "preprocessor_config.json").read_text())
        return model, tokenizer, preprocess

    model, tokenizer, preprocess = build(
        "llava_onevision",
        grid=cfg.grid,
        patch=cfg.patch,
        vision_hidden=cfg.vision_hidden,
        hidden=cfg.hidden,
        layers=cfg.layers,
        heads=cfg.heads,
        kv_heads=cfg.kv_heads,
        max_positions=cfg.language_window,
        seed=cfg.seed,
    )
    tokens_per_frame = math.ceil(cfg.grid / 2) ** 2
    model.config.longvid_trained_frames = max(cfg.frames)
    # every visual token of the trained length: the frames' and the newline after them (so the
    # visual modes' scale is exactly 1 at the trained frame count)
    model.config.longvid_visual_window = max(cfg.frames) * tokens_per_frame + 1
    return model, tokenizer, preprocess


class Batcher:
    """Token ids, pixels and labels for a batch of probe items of one task/form/length."""

    def __init__(self, tokenizer, tokens_per_frame: int, template: str | None = None) -> None:
        from longvid.models.checkpoint.prompt import chatml, split_prompt

        self.tok = tokenizer
        self.split = lambda q: split_prompt(tokenizer, q, "<video>", template or chatml("<video>"))
        self.video_id = tokenizer.convert_tokens_to_ids("<video>")
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.tokens_per_frame = tokens_per_frame

    def __call__(self, items, rng: np.random.Generator | None = None):
        t = items[0].num_frames
        frames = np.stack([render_frames(it) for it in items]).astype(np.float32)  # (b, t, 32, 32, 3)
        if rng is not None:  # jitter: brightness per video, noise per pixel
            frames += rng.normal(0, 6, (len(items), 1, 1, 1, 1)) + rng.normal(0, 3, frames.shape)
        x = torch.from_numpy(np.clip(frames, 0, 255) / 255).permute(0, 1, 4, 2, 3).float()
        pixels = (x - 0.5) / 0.5
        rows, labels = [], []
        for it in items:
            before, after = self.split(it.question)
            answer = self.tok(it.answer, add_special_tokens=False)["input_ids"] + [self.end]
            ids = before + [self.video_id] * (t * self.tokens_per_frame + 1) + after + answer
            rows.append(ids)
            labels.append([-100] * (len(ids) - len(answer)) + answer)
        return torch.tensor(rows), pixels, torch.tensor(labels)


def evaluate(model, batcher: Batcher, frames: int, items: int, forms=FORMS, tasks=TASKS) -> dict[str, float]:
    """Teacher-forced first-answer-token accuracy on held-out seeds, per task and form."""
    model.eval()
    out = {}
    with torch.inference_mode():
        for task in tasks:
            for form in forms:
                correct = 0
                for start in range(0, items, 16):
                    batch = [
                        make_item(task, EVAL_SEED_OFFSET + s, frames, form=form)
                        for s in range(start, min(items, start + 16))
                    ]
                    ids, pixels, labels = batcher(batch)
                    logits = model(input_ids=ids, pixel_values_videos=pixels).logits
                    first = (labels != -100).int().argmax(dim=1)  # position of the first answer token
                    pred = logits[torch.arange(len(batch)), first - 1].argmax(-1)
                    correct += int((pred == ids[torch.arange(len(batch)), first]).sum())
                out[f"{task}/{form}"] = correct / items
    model.train()
    return out


def train(cfg: TrainConfig, out_dir: str | Path, log=print) -> dict:
    """Train from scratch and write a checkpoint folder (plus card.json) to ``out_dir``."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model, tokenizer, preprocess = build_model(cfg)
    model.train()
    batcher = Batcher(tokenizer, math.ceil(cfg.grid / 2) ** 2, QUESTION_AROUND_VIDEO if cfg.question_first else None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:  # cosine to 5 % of the peak
        return warmup_cosine(step, peak=cfg.lr, total=cfg.steps, warmup=cfg.warmup, floor=0.05 * cfg.lr)

    t0 = time.time()
    seed = cfg.seed * 10_000_000  # item seeds: a later stage never repeats an earlier one's videos
    history = []
    losses: list[float] = []
    for step in range(cfg.steps):
        if step < cfg.first_task_steps:
            task = cfg.tasks[0]
        elif cfg.task_weights is not None:
            weights = np.asarray(cfg.task_weights, dtype=float)
            task = cfg.tasks[int(rng.choice(len(cfg.tasks), p=weights / weights.sum()))]
        else:
            task = cfg.tasks[step % len(cfg.tasks)]
        form = cfg.forms[int(rng.integers(len(cfg.forms)))]
        progress = min(1.0, step / max(1, cfg.ramp * cfg.steps))
        density = cfg.density * progress
        longest = max(2, round(max(cfg.frames) * progress))
        choices = [f for f in cfg.frames if f <= longest] or [longest]
        frames = int(rng.choice(choices))
        if task == "count":
            frames = max(frames, 2)
        items = [make_item(task, seed + i, frames, form=form, density=density) for i in range(cfg.batch)]
        seed += cfg.batch
        ids, pixels, labels = batcher(items, rng)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=ids, pixel_values_videos=pixels, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            acc = evaluate(model, batcher, max(cfg.frames), cfg.eval_items, forms=cfg.forms, tasks=cfg.tasks)
            rec = {"step": step + 1, "minutes": round((time.time() - t0) / 60, 2), "loss": round(np.mean(losses), 4)}
            rec.update({k: round(v, 3) for k, v in acc.items()})
            history.append(rec)
            log(json.dumps(rec))
            losses = []
            save(model, tokenizer, preprocess, out_dir, cfg, history, time.time() - t0)
    return history[-1]


def recipe(seed: int = 0, threads: int = 1) -> tuple[TrainConfig, TrainConfig]:
    """The two stages of ``longvid testbed train``; the second's ``init`` is set by ``train_recipe``."""
    scratch = TrainConfig(seed=seed, threads=threads)
    # order-heavy continuation: no needle-only start, no curriculum (the model already reads
    # full-density 16-frame videos), fresh item seeds (seed + 1: a stage never repeats videos)
    order_polish = TrainConfig(
        steps=1500, lr=5e-4, warmup=50, task_weights=(1, 1, 4), first_task_steps=0, ramp=0.0,
        seed=seed + 1, threads=threads, eval_every=250, eval_items=64,
    )  # fmt: skip
    return scratch, order_polish


FINAL_ITEMS = 400  # fresh probe items per task for the card's accuracy (Wilson intervals)


def final_accuracy(folder: str | Path, frames: int, items: int = FINAL_ITEMS, threads: int = 1) -> dict:
    """Accuracy per task through ``longvid probe``'s path (the model as users load it)."""
    from longvid.models import load
    from longvid.probes.runner import run_probe, wilson

    torch.set_num_threads(threads)
    llm = load(str(folder))
    out = {}
    for task in TASKS:
        correct = sum(r.correct for r in run_probe(llm, task, [frames], samples=items, seed=0))
        low, high = wilson(correct, items)
        out[task] = {"accuracy": round(correct / items, 4), "low": round(low, 4), "high": round(high, 4), "n": items}
    return out


def train_recipe(
    out_dir: str | Path,
    seed: int = 0,
    threads: int = 1,
    stage1: str | Path | None = None,
    stages: tuple[TrainConfig, TrainConfig] | None = None,
    final_items: int = FINAL_ITEMS,
    log=print,
) -> dict:
    """Both stages into ``out_dir`` (stage 1 kept beside it as ``<out_dir>.stage1``); returns the card.

    ``stage1``: an existing stage-1 checkpoint to continue from instead of training it again
    (44 minutes here). ``stages``: other configs than ``recipe``'s (tests use tiny ones)."""
    out = Path(out_dir)
    scratch, polish = stages or recipe(seed, threads)
    if stage1 is None:
        stage1 = out.with_name(out.name + ".stage1")
        log(f"stage 1/2: {scratch.steps} steps from scratch -> {stage1}")
        train(scratch, stage1, log=log)
    card_path = Path(stage1) / "card.json"
    if not card_path.exists():
        raise InvalidRequestError(f"{stage1}: no card.json there (not a testbed stage-1 checkpoint)")
    first_stage = json.loads(card_path.read_text())
    if "stages" in first_stage or first_stage["train_config"]["init"] is not None:
        raise InvalidRequestError(
            f"{stage1}: not a stage-1 checkpoint (its card must show one stage trained from scratch)"
        )
    polish = replace(polish, init=str(stage1))
    log(f"stage 2/2: {polish.steps} steps, order-heavy, from {stage1} -> {out}")
    train(polish, out, log=log)
    second = json.loads((out / "card.json").read_text())
    records = [
        {k: first_stage[k] for k in ("train_config", "training_data", "train_minutes", "history")},
        {k: second[k] for k in ("train_config", "training_data", "train_minutes", "history")},
    ]
    records[1]["train_config"]["init"] = "stage 1"  # not a path on the machine that trained it
    card = {
        "what": second["what"],
        "command": f"longvid testbed train --seed {scratch.seed} --threads {scratch.threads}",
        "training_data": " then ".join(st["training_data"].split(", continuing")[0] for st in records),
        "train_minutes": round(sum(st["train_minutes"] for st in records), 1),
        "parameters": second["parameters"],
        "visual_window": second["visual_window"],
        "language_window": second["language_window"],
        "accuracy": final_accuracy(out, max(polish.frames), final_items, threads=threads),
        "stages": records,
    }
    (out / "card.json").write_text(json.dumps(card, indent=1))
    return card


def save(model, tokenizer, preprocess, out_dir, cfg: TrainConfig, history: list, seconds: float) -> None:
    """Write the checkpoint atomically: a half-written folder never replaces a good one."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "preprocessor_config.json").write_text(json.dumps(preprocess, indent=1))
    if cfg.question_first:  # read by longvid.models.checkpoint.registry, so `ask` prompts as training did
        (tmp / "chat_template.jinja").write_text(QUESTION_AROUND_VIDEO)
    card = {
        "what": "longvid testbed: a tiny LLaVA-OneVision trained by longvid on procedural video QA",
        "command": f"longvid testbed train --steps {cfg.steps} --lr {cfg.lr} --seed {cfg.seed} --threads {cfg.threads}",
        "train_config": asdict(cfg),
        "training_data": (
            f"probe tasks {' / '.join(cfg.tasks)} (longvid.probes.tasks), forms {' and '.join(cfg.forms)}, "
            f"{', '.join(map(str, cfg.frames))} frames, 32x32 px, fresh seeds every batch "
            f"({cfg.steps * cfg.batch} videos)" + (f", continuing from {cfg.init}" if cfg.init else "")
        ),
        "train_minutes": round(seconds / 60, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "visual_window": model.config.longvid_visual_window,
        "language_window": cfg.language_window,
        "history": history,
    }
    (tmp / "card.json").write_text(json.dumps(card, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
