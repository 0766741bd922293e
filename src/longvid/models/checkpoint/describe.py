"""``longvid inspect``: what longvid will feed a checkpoint, from its small files alone, and a
check of longvid's frame preprocessing against the official one on the bundled sample."""

from __future__ import annotations

from pathlib import Path

from longvid.bundled import SAMPLE_VIDEO
from longvid.models.checkpoint.reference import compare, official_frames
from longvid.models.checkpoint.registry import read_adapter

SAMPLE = SAMPLE_VIDEO
CHECK_FRAMES = 8


def describe(model: str | Path, question: str = "What happens in this video?", video: str | Path = SAMPLE) -> dict:
    """Family, prompt, tokens per frame, visual window, preprocessing, and the pixel check
    (mean / 99.9th percentile / max |Δ| on the 0-255 scale, exact and fast resize)."""
    from longvid.video import FrameReader

    ad = read_adapter(model)
    files = ad.files
    before, after = ad.prompt_ids(question)
    reader = FrameReader(video)
    width, height = reader.info.width, reader.info.height
    frames = ad.default_frames()
    per_video = ad.video_spec(frames, width, height)
    if per_video is not None:  # one size for the whole video at the trained count (Qwen3's budget)
        ad = ad.with_spec(per_video)
    grid = ad.native_grid(width, height)
    native = reader.sample(n=CHECK_FRAMES).array
    official = official_frames(ad, native)
    exact = ad.spec.normalize(ad.spec.uint8(native))
    fast_frames = reader.sample(n=CHECK_FRAMES, size=ad.frame_size(width, height, exact=False)).array
    fast = ad.spec.normalize(ad.spec.uint8(fast_frames))
    source = files.source
    weights = isinstance(source, Path) and (any(source.glob("*.safetensors")) or any(source.glob("*.bin")))
    return {
        "model": files.name,
        "family": files.config.model_type,
        "transformers_class": ad.model_classes[files.config.model_type],
        "weights_present": bool(weights),
        "processor_config": files.preprocess_file,
        "chat_template": "the checkpoint's" if files.chat_template else f"none shipped: {ad.template_note}",
        "prompt": ad.prompt_text(question),
        "prompt_tokens_before_video": len(before),
        "prompt_tokens_after_video": len(after),
        "video_token": ad.video_token,
        "preprocessing": ad.spec.describe(),
        "check_video": str(video),
        "check_video_size": [width, height],
        "frame_size_fed": list(ad.spec.output_size(width, height)),
        "tokens_per_frame": ad.native_tokens_per_frame(*grid),
        "trained_frames": frames,
        "visual_tokens_at_trained_frames": ad.video_token_count(frames, width, height),
        "visual_window": ad.visual_window(grid),
        "language_window": ad.language_window(),
        "own_rope_scaling": ad.own_rope().describe(),
        "positions": ad.position_layout,
        "pooling_op": ad.pooling_op,
        "pixels_vs_official": compare(ad, exact, official),
        "pixels_vs_official_fast_resize": compare(ad, fast, official),
    }
