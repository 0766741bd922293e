"""INTP rearrangement: subsequences cover every frame, outputs come back in frame order;
for encoders that see frames one by one (transformers' Video-LLaVA) features are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longvid.errors import InvalidRequestError
from longvid.extend.rearrange import encode_rearranged, split_frames
from longvid.video.synth import read_index_stamp, stamp_index


def test_interleave_and_chunks_layout():
    assert [p.tolist() for p in split_frames(8, 4, "interleave")] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert [p.tolist() for p in split_frames(8, 4, "chunks")] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # 30 frames, groups of 8: m = 4; short subsequences repeat their last frame
    parts = split_frames(30, 8, "interleave")
    assert len(parts) == 4 and all(len(p) == 8 for p in parts)
    assert parts[2].tolist() == [2, 6, 10, 14, 18, 22, 26, 26]
    assert sorted(set(np.concatenate(parts).tolist())) == list(range(30))
    with pytest.raises(InvalidRequestError, match="unknown rearrangement"):
        split_frames(8, 4, "shuffle")


@pytest.mark.parametrize("mode", ["interleave", "chunks"])
@pytest.mark.parametrize("frames", [8, 16, 30, 32])
def test_restores_frame_order_from_pixels(mode, frames):
    video = np.zeros((frames, 48, 64, 3), np.uint8)
    for i in range(frames):
        stamp_index(video[i], i)
    seen_groups = []

    def encoder(batch: torch.Tensor) -> torch.Tensor:  # a fixed 8-frame encoder: outputs each frame's own index
        assert batch.shape[0] == 8
        ids = torch.tensor([read_index_stamp(f.numpy()) for f in batch])
        seen_groups.append(ids.tolist())
        return ids[:, None].float()

    out = encode_rearranged(torch.from_numpy(video), 8, encoder, mode)
    assert out[:, 0].long().tolist() == list(range(frames))
    if mode == "interleave" and frames == 32:
        assert seen_groups[0] == [0, 4, 8, 12, 16, 20, 24, 28]


@pytest.fixture(scope="module")
def video_llava(tiny_models):
    return tiny_models["video_llava"]


@pytest.mark.parametrize("frames", [8, 16, 32, 30])
def test_video_llava_features_identical_under_any_split(video_llava, frames):
    rng = np.random.default_rng(frames)
    video = rng.integers(0, 255, (frames, 32, 32, 3), dtype=np.uint8)
    plain = video_llava.encode_video(video, frames=frames)
    for mode in ("interleave", "chunks"):
        other = video_llava.encode_video(video, frames=frames, rearrange=mode)
        torch.testing.assert_close(other.embeds, plain.embeds, rtol=1e-5, atol=1e-5)
    answer = video_llava.ask(video, "which shape came first ?", extend="ntk", rearrange="interleave", max_new_tokens=2)
    assert answer.report.frames == frames and answer.report.rearrange == "interleave"
    assert answer.report.visual_tokens == frames * (64 + 1)


def test_rearranged_asks_report_decode_and_encode_times(video_llava):
    video = np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    seconds = video_llava.ask(video, "q", rearrange="interleave", max_new_tokens=1).report.seconds
    assert {"decode", "encode", "prefill", "generate", "total"} <= set(seconds)
    assert seconds["decode"] + seconds["encode"] <= seconds["total"]
