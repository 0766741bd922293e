"""One request value (``AskOptions``): built from keywords, a mapping, text (model_args); every
wrong type or range refused in one line naming the field, at every Python entry point."""

from __future__ import annotations

import numpy as np
import pytest

from longvid.errors import InvalidRequestError
from longvid.models.inference.request import AskOptions


def test_defaults_live_in_one_place_and_round_trip():
    o = AskOptions()
    assert (o.frames, o.extend, o.pooling, o.keep, o.kv_bits, o.max_new_tokens) == (
        None,
        "none",
        "uniform",
        0.25,
        16,
        32,
    )
    assert AskOptions.from_mapping(o.to_dict()) == o
    text = {"frames": "64", "keep": "0.5", "kv_bits": "4", "fast_resize": "true", "visual_window": "none"}
    parsed = AskOptions.from_mapping(text, strings=True)
    assert (parsed.frames, parsed.keep, parsed.kv_bits, parsed.fast_resize, parsed.visual_window) == (64, 0.5, 4, True,
                                                                                                     None)  # fmt: skip
    assert AskOptions.build(o, frames=8).frames == 8 and o.frames is None  # frozen: a new value
    with pytest.raises(AttributeError):
        o.frames = 3


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"frames": True}, "frames must be a whole number"),
        ({"frames": "8"}, "frames must be a whole number"),
        ({"frames": 8.0}, "frames must be a whole number"),
        ({"frames": 0}, "frames must be >= 1"),
        ({"keep": float("nan")}, "keep must be a number"),
        ({"keep": 0}, r"keep must be in \(0, 1\]"),
        ({"kv_bits": 3}, "unknown kv_bits 3"),
        ({"extend": "warp"}, "unknown extend 'warp'"),
        ({"reduce": "merge", "pooling": "progressive"}, "reduce works on the family's own"),
        ({"fps": -1.0}, "fps must be > 0"),
        ({"temperature": 0.7}, "unknown option: temperature"),
    ],
)
def test_wrong_types_and_ranges_name_the_field(fields, message):
    with pytest.raises(InvalidRequestError, match=message):
        AskOptions.from_mapping(fields)


def test_every_python_entry_point_refuses_wrong_types(tiny_models, tiny_checkpoints):
    import longvid

    llm = tiny_models["llava_onevision"]
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    cases = [
        (lambda: llm.ask(frames, 123), "a question must be text"),
        (lambda: llm.ask(frames, ["a ?", ""]), "a question must not be empty"),
        (lambda: llm.ask(frames, "q", frames="8"), "frames must be a whole number"),
        (lambda: llm.ask(frames, "q", frames=True), "frames must be a whole number"),
        (lambda: llm.ask(frames.astype(np.float32), "q"), "frames must be a uint8 array"),
        (lambda: llm.ask(object(), "q"), "a video is a file path, Frames or a uint8 array"),
        (lambda: llm.chat(frames).ask(123), "a question must be text"),
        (lambda: longvid.load(123), "model must be a folder or a hub id"),
        (lambda: longvid.prepare(tiny_checkpoints["llava_onevision"], frames, None), "a question must be text"),
        (lambda: longvid.prepare(tiny_checkpoints["llava_onevision"], frames, "q", frames=0), "frames must be >= 1"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidRequestError, match=message):
            call()


def test_lmms_eval_model_args_are_typed_by_name():
    from longvid.evals.lmms_plugin import LongvidRequests

    with pytest.raises(InvalidRequestError, match="kv_bits must be a whole number"):
        LongvidRequests(llm=object(), kv_bits="four")
    with pytest.raises(InvalidRequestError, match="frames must be >= 1"):
        LongvidRequests(llm=object(), frames="0")
    ok = LongvidRequests(llm=object(), frames="16", fps=None, extend="visual-yarn")
    assert ok.options.frames == 16 and ok.options.extend == "visual-yarn"
