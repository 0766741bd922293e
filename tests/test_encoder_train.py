"""Encoder training: config files, stages, exact resume, atomic checkpoints, DDP, eval."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

from longvid.encoder.train import EncoderTrainConfig, StepSampler, load_config, load_encoder, train
from longvid.errors import InvalidRequestError
from tests.support import save_tiny_bert


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny saved BERT (the text tower) and a 12-clip synthetic set."""
    from longvid.encoder.data import write_synthetic_set

    root = tmp_path_factory.mktemp("encdata")
    save_tiny_bert(root / "bert")
    manifest = write_synthetic_set(root / "set", n=12, frames=8, size=32)
    return root, manifest


def config(data, out, **kw) -> EncoderTrainConfig:
    root, manifest = data
    base = dict(manifest=str(manifest), out=str(out), text=str(root / "bert"), frames=4, steps=6, batch=4,
                workers=0, warmup=2, lr=2e-3, save_every=1)  # fmt: skip
    return EncoderTrainConfig(**{**base, **kw})


def losses(out) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "history.jsonl").read_text().splitlines()]


def test_config_files_toml_and_yaml_with_stage_defaults(tmp_path):
    (tmp_path / "a.toml").write_text('stage = "long"\n[data]\nmanifest = "m.jsonl"\nout = "run"\n[train]\nsteps = 5\n')
    cfg = load_config(tmp_path / "a.toml")
    assert (cfg.frames, cfg.mask_ratio, cfg.trainable, cfg.steps) == (64, 0.75, "last:4", 5)
    assert cfg.manifest == str(tmp_path / "m.jsonl")  # relative to the config file
    (tmp_path / "b.yaml").write_text("manifest: m.jsonl\nout: run\nstage: image\nmask_ratio: 0.3\n")
    cfg = load_config(tmp_path / "b.yaml", {"batch": 8})
    assert (cfg.frames, cfg.mask_ratio, cfg.trainable, cfg.batch) == (1, 0.3, "all", 8)
    (tmp_path / "c.toml").write_text('manifest = "m"\nout = "o"\nlearning_rate = 1\n')
    with pytest.raises(InvalidRequestError, match="unknown keys \\['learning_rate'\\]"):
        load_config(tmp_path / "c.toml")
    with pytest.raises(InvalidRequestError, match="last:K"):
        EncoderTrainConfig(manifest="m", out="o", trainable="last4")


def test_step_sampler_covers_each_epoch_once_and_resumes_mid_stream():
    full = StepSampler(10, 3, seed=1, start=0)
    it = iter(full)
    first = [next(it) for _ in range(30)]  # 9 steps = 2.7 epochs
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:20]) == list(range(10))
    later = iter(StepSampler(10, 3, seed=1, start=4))
    assert [next(later) for _ in range(9)] == first[12:21]
    # two ranks with batch 2 read together what one process with batch 4 reads
    ranks = [iter(StepSampler(10, 2, seed=1, start=0, rank=r, world=2)) for r in range(2)]
    one = iter(StepSampler(10, 4, seed=1, start=0))
    assert [next(ranks[0]), next(ranks[0]), next(ranks[1]), next(ranks[1])] == [next(one) for _ in range(4)]


def test_killed_and_resumed_run_repeats_the_loss_sequence(data, tmp_path):
    train(config(data, tmp_path / "full"), progress=False)
    reference = losses(tmp_path / "full")
    assert len(reference) == 6 and reference[-1] < reference[0]  # it learns
    run = config(data, tmp_path / "cut")
    train(run, progress=False, stop_after=3)  # as if killed after step 3's checkpoint
    assert len(losses(tmp_path / "cut")) == 3
    run = config(data, tmp_path / "cut", cache_decoded=True)  # a setting that changes no number
    with (tmp_path / "cut" / "history.jsonl").open("a") as f:
        f.write('{"step": 4, "loss": 9.9}\n{"step": 5, "lo')  # lines written after the checkpoint, half a line
    train(run, progress=False)
    assert losses(tmp_path / "cut") == pytest.approx(reference, rel=1e-6, abs=1e-7)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(k.startswith("text.encoder.") for k in a)  # frozen text encoder is not copied


def test_order_negatives_change_the_loss_and_train(data, tmp_path):
    train(config(data, tmp_path / "plain", steps=2), progress=False)
    train(config(data, tmp_path / "neg", steps=2, order_negatives=True), progress=False)
    plain, neg = losses(tmp_path / "plain"), losses(tmp_path / "neg")
    assert neg[0] > plain[0]  # the same first batch, more negatives


def test_bf16_autocast_and_gradient_checkpointing_train(data, tmp_path):
    # bf16 autocast is the GPU default; CPU autocast runs the same code path here
    train(config(data, tmp_path / "bf16", steps=3, precision="bf16", grad_checkpointing=True), progress=False)
    values = losses(tmp_path / "bf16")
    assert len(values) == 3 and all(v == v and 0 < v < 10 for v in values)  # finite


def test_resume_refuses_a_changed_config(data, tmp_path):
    train(config(data, tmp_path / "r", steps=2), progress=False)
    with pytest.raises(InvalidRequestError, match="changed: lr"):
        train(config(data, tmp_path / "r", steps=2, lr=1.0), progress=False)


def test_checkpoint_write_is_atomic(data, tmp_path, monkeypatch):
    import longvid.encoder.train as mod

    train(config(data, tmp_path / "a", steps=2), progress=False)
    good = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def dies_mid_write(obj, path):
        real_save(obj, path)
        with open(path, "r+b") as f:
            f.truncate(100)
        raise KeyboardInterrupt  # killed before the rename

    monkeypatch.setattr(mod.torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        mod.save_atomic({"x": 1}, tmp_path / "a" / "checkpoint.pt")
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == good


def test_stages_image_then_short_then_long_last_layers(data, tmp_path):
    image = config(data, tmp_path / "img", stage="image", steps=2)
    train(image, progress=False)
    short = config(data, tmp_path / "short", stage="short", frames=4, steps=2, init=str(tmp_path / "img"))
    train(short, progress=False)
    img_state = torch.load(tmp_path / "img" / "checkpoint.pt", weights_only=True)["model"]
    short_model, _ = load_encoder(tmp_path / "short")
    # the image stage never trains the tubelet kernel; the short stage starts from its inflation
    assert not torch.equal(short_model.video.tubelet.weight, img_state["video.tubelet.weight"])
    long = config(data, tmp_path / "long", stage="long", frames=8, steps=2, mask_ratio=0.5,
                  trainable="last:1", init=str(tmp_path / "short"))  # fmt: skip
    train(long, progress=False)
    long_model, _ = load_encoder(tmp_path / "long")
    assert long_model.video.pos_temporal.shape[0] == 4  # 8 frames / tubelet 2
    for name, p in short_model.video.named_parameters():
        q = dict(long_model.video.named_parameters())[name]
        frozen = not name.startswith(("blocks.3.", "norm.", "head.")) and name != "pos_temporal"
        if frozen:
            assert torch.equal(p, q), name  # only the last block, norm and head moved
    assert not torch.equal(short_model.video.blocks[3].qkv.weight, long_model.video.blocks[3].qkv.weight)


@pytest.mark.parametrize("cache", [False, True])
def test_bad_and_undecodable_clips_are_reported_not_fatal(data, tmp_path, cache):
    _, manifest = data
    lines = manifest.read_text().splitlines()
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    lines += ["{broken", json.dumps({"video": str(tmp_path / "junk.mp4"), "caption": "a red square appears"})]
    bad_manifest = tmp_path / "m.jsonl"
    bad_manifest.write_text("\n".join(lines).replace('"videos/', f'"{manifest.parent}/videos/') + "\n")
    with pytest.warns(UserWarning) as caught:
        # without the cache, clips are decoded in a DataLoader worker process
        cfg = config(data, tmp_path / "o", manifest=str(bad_manifest), steps=4, batch=6, cache_decoded=cache,
                     workers=0 if cache else 1)  # fmt: skip
        train(cfg, progress=False)
    messages = " ".join(str(w.message) for w in caught)
    assert "1 bad rows skipped" in messages and messages.count("junk.mp4: cannot decode") == 1
    assert len(losses(tmp_path / "o")) == 4


def _ddp_rank(rank: int, world: int, port: int, runs: list[tuple[EncoderTrainConfig, str]]) -> None:
    """One rank: every (config, results folder) in turn, in one process group (process
    start-up is most of the cost, so DDP and FSDP share it)."""
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    import torch.distributed as dist

    import longvid.encoder.train as mod

    captured = {}
    real_wrap = mod.wrap

    def keep(model, mode, env):
        captured["model"] = model
        return real_wrap(model, mode, env)

    mod.wrap = keep
    for cfg, results in runs:
        train(cfg, progress=False)
        state = {}
        for k, v in captured["model"].state_dict().items():
            if "text.encoder" not in k:
                v = v.full_tensor() if hasattr(v, "full_tensor") else v  # FSDP shards: gather the whole
                state[k] = v.detach().cpu().clone()
        torch.save(state, f"{results}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_process_ddp_ranks_hold_identical_weights_and_fsdp_matches(data, tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    modes = ("ddp", "fsdp")
    runs = [(config(data, tmp_path / mode, steps=3, batch=2, distributed=mode), str(tmp_path / mode)) for mode in modes]
    # and every stage under FSDP, each from the one before (inflated kernels, resized
    # temporal embeddings: parameters FSDP must be able to shard)
    stages = [("image", {}), ("short", {"frames": 4}), ("long", {"frames": 8, "trainable": "last:1"})]
    for k, (stage, extra) in enumerate(stages):
        init = {"init": str(tmp_path / f"fsdp-{stages[k - 1][0]}")} if k else {}
        cfg = config(
            data, tmp_path / f"fsdp-{stage}", stage=stage, steps=2, batch=2, distributed="fsdp", **extra, **init
        )
        runs.append((cfg, str(tmp_path / f"fsdp-{stage}")))
    for _, folder in runs:
        Path(folder).mkdir(parents=True, exist_ok=True)
    mp.spawn(_ddp_rank, args=(2, port, runs), nprocs=2, join=True)
    for stage, _ in stages:
        assert len(losses(tmp_path / f"fsdp-{stage}")) == 2
        a, b = (torch.load(tmp_path / f"fsdp-{stage}" / f"rank{r}.pt", weights_only=True) for r in range(2))
        assert all(torch.equal(a[k], b[k]) for k in a)
    weights = {}
    for mode in modes:
        a, b = (torch.load(tmp_path / mode / f"rank{r}.pt", weights_only=True) for r in range(2))
        assert all(torch.equal(a[k], b[k]) for k in a)
        saved = torch.load(tmp_path / mode / "checkpoint.pt", weights_only=True)["model"]
        assert torch.equal(saved["video.head.weight"], a["video.head.weight"])
        assert len(losses(tmp_path / mode)) == 3
        weights[mode] = a
    # sharded training computes what replicated training does, up to float summation order: Adam
    # normalises each gradient, so an element whose gradient is near zero can move by up to
    # 2 x lr a step either way (one of ~100k elements once moved 1.7e-4 in CI); any real
    # difference (a wrong shard, a missed reduction) moves a large share of the elements
    assert weights["fsdp"].keys() == weights["ddp"].keys()
    diffs = torch.cat([(weights["fsdp"][k] - v).abs().flatten().float() for k, v in weights["ddp"].items()])
    assert (diffs > 1e-4).float().mean() < 1e-3, f"{int((diffs > 1e-4).sum())} of {diffs.numel()} elements differ"
    assert diffs.max() <= 2 * 2e-3 * 3  # 2 x lr x steps


def test_eval_reports_recall_and_order_accuracy(data, tmp_path):
    from longvid.encoder.evaluate import evaluate_manifest, format_report

    _, manifest = data
    train(config(data, tmp_path / "e", steps=2), progress=False)
    model, _ = load_encoder(tmp_path / "e")
    result = evaluate_manifest(model, manifest, frames=4)
    assert result["clips"] == 12 and 0 <= result["t2v_r@1"] <= result["t2v_r@5"] <= result["t2v_r@10"] <= 1
    assert result["order_clips"] == 12 and 0 <= result["order_acc"] <= 1
    # the same numbers from the embeddings directly
    from longvid.encoder.data import read_manifest
    from longvid.encoder.evaluate import embed_clips
    from longvid.encoder.metrics import recall_at_k

    v, t = embed_clips(model, read_manifest(manifest)[0], 4)
    assert recall_at_k(v, t)["v2t_r@1"] == pytest.approx(result["v2t_r@1"], abs=1e-4)
    assert "R@1" in format_report(result)


@pytest.mark.parametrize("name", ["image.toml", "short.toml", "long.yaml"])
def test_example_configs_load(name):
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "encoder" / name
    cfg = load_config(path)
    assert cfg.stage == name.split(".")[0]
    assert Path(cfg.manifest).resolve() == (path.parent.parent.parent / "data" / "manifest.jsonl").resolve()
    assert (cfg.stage != "long") or (cfg.trainable == "last:4" and cfg.frames == 64 and cfg.grad_checkpointing)


def test_eval_command_reads_longer_inputs_by_interleaving(data, tmp_path, capsys):
    from longvid.cli import main
    from longvid.encoder.data import read_manifest
    from longvid.encoder.evaluate import embed_clips

    _, manifest = data
    train(config(data, tmp_path / "l", steps=2), progress=False)  # trained at 4 frames
    assert main(["encoder", "eval", str(tmp_path / "l"), "--manifest", str(manifest), "--frames", "8",
                 "--long", "interleave", "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["frames"], out["long"], out["group"]) == (8, "interleave", 4)
    model, _ = load_encoder(tmp_path / "l")
    clips = read_manifest(manifest)[0]
    inter, _ = embed_clips(model, clips, 8, long="interleave", group=4)
    chunks, _ = embed_clips(model, clips, 8, long="chunks", group=4)
    assert not torch.allclose(inter, chunks)  # two different readings of the same 8 frames
    assert main(["encoder", "eval", str(tmp_path / "l"), "--manifest", str(manifest), "--long", "sideways"]) == 2


def test_config_paths_are_absolute_so_a_run_resumes_from_anywhere(data, tmp_path, monkeypatch):
    root, manifest = data
    folder = tmp_path / "cfg"
    folder.mkdir()
    rel = os.path.relpath(manifest, folder)
    bert = os.path.relpath(root / "bert", folder)
    (folder / "run.toml").write_text(
        f'manifest = "{rel}"\nout = "runs/a"\ntext = "{bert}"\nframes = 4\nsteps = 2\nbatch = 4\nworkers = 0\n'
        "warmup = 1\nsave_every = 1\n"
    )
    monkeypatch.chdir(folder)
    first = load_config("run.toml")  # relative to the config, launched from its folder
    assert first.manifest == str(manifest.resolve()) and first.out == str((folder / "runs" / "a").resolve())
    train(first, progress=False, stop_after=1)
    monkeypatch.chdir(tmp_path)
    again = load_config(folder / "run.toml")  # from elsewhere, by absolute path: the same run
    assert again == first
    train(again, progress=False)
    assert len(losses(folder / "runs" / "a")) == 2


@pytest.mark.parametrize(
    "override,message",
    [
        ({"manifest": "missing.jsonl"}, "manifest: no manifest file at"),
        ({"mask_ratio": -0.5}, r"mask_ratio must be in \[0, 1\)"),
        ({"mask_ratio": 1.0}, r"mask_ratio must be in \[0, 1\)"),
        ({"steps": "abc"}, "steps must be an int"),
        ({"lr": 0}, "lr must be > 0"),
        ({"batch": 0}, "batch must be >= 1"),
        ({"warmup": -1}, "warmup must be >= 0"),
        ({"grad_checkpointing": "yes"}, "grad_checkpointing must be a bool"),
    ],
)
def test_bad_config_values_are_refused_naming_the_key(data, tmp_path, override, message):
    root, manifest = data
    (tmp_path / "c.toml").write_text(f'manifest = "{manifest}"\nout = "o"\ntext = "{root / "bert"}"\n')
    with pytest.raises(InvalidRequestError, match=message):
        train(load_config(tmp_path / "c.toml", override), progress=False)


def test_cli_set_with_a_missing_manifest_is_one_line(data, tmp_path, capsys):
    from longvid.cli import main

    root, manifest = data
    (tmp_path / "c.toml").write_text(f'manifest = "{manifest}"\nout = "o"\ntext = "{root / "bert"}"\n')
    assert main(["encoder", "train", str(tmp_path / "c.toml"), "--set", "manifest=missing.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "manifest: no manifest file at" in err and err.count("\n") == 1


def test_the_documented_walkthrough_runs_at_small_size(data, tmp_path, capsys):
    """README / docs/encoder.md's commands in order, as written but for sizes and steps."""
    from tests.support import run

    root, _ = data
    examples = Path(__file__).resolve().parents[1] / "examples" / "encoder"
    d, runs = tmp_path / "data", tmp_path / "runs"
    assert run(capsys, "encoder", "synth", d, "--n", 8, "--frames", 8, "--size", 32)[0] == 0
    assert run(capsys, "encoder", "synth", d / "heldout", "--n", 8, "--frames", 8, "--size", 32, "--seed", 1)[0] == 0
    small = [
        "--set",
        "steps=2",
        "--set",
        "batch=4",
        "--set",
        f"text={root / 'bert'}",
        "--set",
        f"manifest={d / 'manifest.jsonl'}",
    ]
    stages = [("image", "image.toml", []), ("short", "short.toml", ["--set", "frames=4"]),
              ("long", "long.yaml", ["--set", "frames=8", "--set", "trainable=last:1"])]  # fmt: skip
    for k, (stage, config_file, extra) in enumerate(stages):
        paths = ["--set", f"out={runs / stage}"]
        if k:
            paths += ["--set", f"init={runs / stages[k - 1][0]}"]
        if stage == "short":
            paths += ["--set", f"eval_manifest={d / 'heldout' / 'manifest.jsonl'}"]
        code, out, err = run(capsys, "encoder", "train", examples / config_file, *small, *paths, *extra)
        assert code == 0, err
        assert out.startswith(f"{stage} stage: 2/2 steps, loss ")
    again = run(capsys, "encoder", "train", examples / "long.yaml", *small, "--set", f"out={runs / 'long'}",
                "--set", f"init={runs / 'short'}", "--set", "frames=8", "--set", "trainable=last:1")  # fmt: skip
    assert again[0] == 0 and again[1].startswith("long stage: 2/2 steps, loss ")  # a finished run says what it did
    code, out, _ = run(capsys, "encoder", "eval", runs / "short", "--manifest", d / "heldout" / "manifest.jsonl")
    assert code == 0 and "R@1" in out
    code, out, _ = run(capsys, "encoder", "caption-lm", "--manifest", d / "manifest.jsonl", "--out", runs / "lm",
                       "--steps", 5)  # fmt: skip
    assert code == 0 and "caption LM" in out
    code, _, err = run(capsys, "encoder", "caption-train", "--encoder", runs / "short", "--lm", runs / "lm",
                       "--manifest", d / "manifest.jsonl", "--out", runs / "cap", "--steps", 2,
                       "--batch", 4)  # fmt: skip
    assert code == 0, err
    code, out, _ = run(
        capsys, "encoder", "caption", "--model", runs / "cap", "--manifest", d / "heldout" / "manifest.jsonl"
    )
    assert code == 0 and out.count("\t") == 8 and "ROUGE-L" in out  # no video needed with --manifest


def test_a_stage_whose_init_is_missing_says_to_train_it_first(data, tmp_path):
    cfg = config(data, tmp_path / "short", stage="short", init=str(tmp_path / "runs" / "image"))
    with pytest.raises(InvalidRequestError, match=r"init: no encoder checkpoint at .*train the stage it names first"):
        train(cfg, progress=False)


def test_clips_shorter_than_the_frames_read_are_named(data, tmp_path):
    with pytest.warns(UserWarning, match="has 8 frames and the run reads 16 per clip: frames repeat"):
        train(config(data, tmp_path / "r", frames=16, steps=1), progress=False)


def test_training_starts_from_a_siglip_image_tower(data, tmp_path):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from longvid.encoder.towers import from_image_tower

    torch.manual_seed(0)
    tower = tmp_path / "siglip"
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                image_size=32, patch_size=8)  # fmt: skip
    SiglipVisionModel(vision).save_pretrained(tower)
    cfg = config(data, tmp_path / "run", stage="short", frames=4, steps=2, init_image=str(tower))
    train(cfg, progress=False)
    model, loaded = load_encoder(tmp_path / "run")
    assert loaded.init_image == str(tower) and model.video.config.head_pool == "map"
    start = from_image_tower(tower, frames=4)
    # trained two steps from the tower: its blocks moved, its shape kept
    assert model.video.blocks[0].qkv.weight.shape == start.blocks[0].qkv.weight.shape
    assert not torch.equal(model.video.blocks[0].qkv.weight, start.blocks[0].qkv.weight)


@pytest.mark.parametrize("adapt", ["lora", "mlp"])
def test_adapters_train_alone_and_start_as_the_model(data, tmp_path, adapt):
    from longvid.encoder.adapt import adapter_parameters, merge_lora
    from longvid.encoder.dual import build, set_trainable

    cfg = config(data, tmp_path / adapt, steps=3, adapt=adapt, adapt_rank=4)
    torch.manual_seed(cfg.seed)
    start = build(cfg)
    set_trainable(start, cfg)
    trainable = {n for n, p in start.video.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in start.video.named_parameters() if "lora_" in n or ".adapter." in n} | {
        "head.weight"
    }
    clip = torch.rand(2, 4, 3, 32, 32) * 2 - 1
    plain = config(data, tmp_path / "plain", steps=3)
    torch.manual_seed(plain.seed)
    base = build(plain)
    with torch.no_grad():  # zero-initialised adapters: the adapted model starts as the model
        torch.testing.assert_close(start.video.forward_features(clip), base.video.forward_features(clip))
    train(cfg, progress=False)
    model, loaded = load_encoder(tmp_path / adapt)
    assert loaded.adapt == adapt and len(adapter_parameters(model.video)) > 0
    moved = [n for n, p in model.video.named_parameters()
             if not torch.equal(p, dict(start.video.named_parameters())[n])]  # fmt: skip
    assert moved and all(n in trainable for n in moved)  # only adapters and the head trained
    if adapt == "lora":  # folded into the weights for export: the same outputs, no LoRA left
        with torch.no_grad():
            before = model.video.forward_features(clip)
            merge_lora(model.video)
            torch.testing.assert_close(model.video.forward_features(clip), before, rtol=1e-5, atol=1e-5)
        assert not adapter_parameters(model.video)
        # a next stage starts from the LoRA-trained one with its LoRA merged in
        nxt = config(
            data, tmp_path / "next", stage="long", frames=8, steps=1, trainable="last:1", init=str(tmp_path / adapt)
        )
        train(nxt, progress=False)
        assert not adapter_parameters(load_encoder(tmp_path / "next")[0].video)
    else:
        with pytest.raises(InvalidRequestError, match="MLP adapters, which cannot be merged"):
            train(config(data, tmp_path / "next", stage="long", frames=8, init=str(tmp_path / adapt)), progress=False)


@pytest.mark.parametrize("patching", [{"tubelet": 4}, {"patch": 16}])
def test_coarse_temporal_and_spatial_patching_train(data, tmp_path, patching):
    cfg = config(data, tmp_path / "p", steps=2, frames=8, **patching)
    train(cfg, progress=False)
    model, _ = load_encoder(tmp_path / "p")
    tubelet, patch = patching.get("tubelet", 2), patching.get("patch", 8)
    assert (model.video.config.tubelet, model.video.config.patch) == (tubelet, patch)
    tokens, steps = model.video.patch_tokens(torch.rand(1, 8, 3, 32, 32) * 2 - 1)
    assert steps == 8 // tubelet and tokens.shape[1] == steps * (32 // patch) ** 2  # fewer tokens, less memory


def test_sparse_tubes_see_the_clip_with_fewer_tokens_and_train(data, tmp_path):
    from longvid.encoder.model import VideoViT, config_for

    dense = VideoViT(config_for("micro", frames=16))
    tubes = VideoViT(config_for("micro", frames=16, tubes=True))
    clip = torch.rand(2, 16, 3, 32, 32) * 2 - 1
    n_dense = dense.encode_tokens(clip)[0].shape[1]
    n_tubes = tubes.encode_tokens(clip)[0].shape[1]
    # 8 steps x 16 patches densely; tubes: 2 x 16 fine + 2 x 4 long + 2 x 4 between
    assert (n_dense, n_tubes) == (128, 48)
    assert tubes.encode_tokens(clip, mask_ratio=0.75)[0].shape[1] == 12  # masking drops tube tokens
    other = clip.clone()
    other[:, 8:] = other[:, 8:].flip(0)  # the second half of the clips swapped between them
    with torch.no_grad():
        assert not torch.allclose(tubes.forward_features(clip), tubes.forward_features(other))
    train(config(data, tmp_path / "t", steps=2, frames=8, tubes=True, mask_ratio=0.5), progress=False)
    model, cfg = load_encoder(tmp_path / "t")
    assert cfg.tubes and model.video.config.tubes
