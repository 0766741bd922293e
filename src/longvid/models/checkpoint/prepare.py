"""``longvid.prepare``: a checkpoint's model inputs, as its official processor returns them,
from longvid's frame sampling and preprocessing, read from the checkpoint's small files
alone (no weights). Plain transformers then runs on them: ``model.generate(**inputs)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from longvid.errors import InvalidRequestError
from longvid.models.checkpoint.registry import read_adapter
from longvid.models.families.adapter import FamilyAdapter
from longvid.models.inference.encoding import as_source
from longvid.models.inference.request import AskOptions, check_question
from longvid.models.inference.sampling import plan_sampling
from longvid.video import FrameReader, Frames


def sample_for(adapter: FamilyAdapter, video: str | Path | Frames | np.ndarray, frames: int, exact: bool = True):
    """``Frames``: ``frames`` spread first-to-last over a file (sized for the decoder when
    ``exact`` is False), or the frames given."""
    source = as_source(video)
    if isinstance(source, Frames):
        return source
    reader = FrameReader(source)
    size = adapter.frame_size(reader.info.width, reader.info.height, exact)
    return reader.sample(n=frames, size=size)


def prepare(
    model: str | Path | FamilyAdapter,
    video: str | Path | Frames | np.ndarray,
    question: str,
    *,
    frames: int | None = None,
    fast_resize: bool = False,
    **budgets,
) -> dict[str, torch.Tensor]:
    """The inputs the family's official processor returns for ``video`` and ``question``:
    ``input_ids`` (the video token repeated once per visual token), ``attention_mask``,
    ``pixel_values_videos``; Qwen adds ``video_grid_thw``, Qwen2.5-VL ``second_per_grid_ts``.

    ``model``: a checkpoint folder or hub id (only its config, tokenizer, processor config and
    chat template are read) or an adapter. ``frames``: how many to sample uniformly (default:
    as many as the checkpoint was trained with); or qwen-vl-utils' ``fps``, ``min_frames``,
    ``max_frames``, ``min_pixels``, ``max_pixels``, ``total_pixels`` (``inference.sampling``).
    """
    sampling = ("fps", "min_frames", "max_frames", "min_pixels", "max_pixels", "total_pixels")
    other = sorted(k for k in budgets if k not in sampling)
    if other:  # prepare samples and preprocesses; extension and pooling happen in the model
        raise InvalidRequestError(
            f"prepare takes frames, fast_resize and {', '.join(sampling)}; not {', '.join(other)}"
        )
    options = AskOptions.from_mapping({"frames": frames, "fast_resize": fast_resize, **budgets})
    check_question(question)
    adapter = model if isinstance(model, FamilyAdapter) else read_adapter(model)
    plan = plan_sampling(adapter, as_source(video), options)
    adapter, n = plan.adapter, plan.frames
    sampled = sample_for(adapter, video, n, exact=not fast_resize)
    array = sampled.array
    batch = adapter.pixels(array)
    before, after = adapter.prompt_ids(question)
    height, width = array.shape[1:3]
    per_step = adapter.video_token_count(adapter.frames_per_step, width, height) - adapter.extra_token_count()
    ids = torch.tensor([adapter.video_prompt_ids(before, after, sampled, per_step)], dtype=torch.long)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), **adapter.text_inputs(ids)}
    inputs.update(adapter.official_inputs(batch, sampled.duration))
    return inputs
