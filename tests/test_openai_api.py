"""``longvid serve``'s OpenAI-compatible /v1 API, driven by the real ``openai`` client against a
live server: a video by data URL, by an allowed path and as frames; streaming; a follow-up;
OpenAI error objects for a path outside the allowed folder, a bad option, a sampling request,
an unknown model. Answers equal asking the same model in process."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

openai = pytest.importorskip("openai")

QUESTION = "what colour is the shape with the marker ?"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from longvid.bundled import SAMPLE_VIDEO

    folder = tmp_path_factory.mktemp("media")
    shutil.copy(SAMPLE_VIDEO, folder / "sample.mp4")
    return folder


@pytest.fixture(scope="module")
def live(media):
    from tests.test_web import _free_port

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "longvid", "serve", "--port", str(port), "--allowed-local-media-path", str(media)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=120)
    for _ in range(300):
        try:
            client.models.list()
            break
        except openai.APIConnectionError:
            if proc.poll() is not None:
                raise AssertionError("longvid serve exited: " + proc.stdout.read()) from None
            time.sleep(0.1)
    yield client
    proc.terminate()
    proc.wait(10)


def video_part(url: str) -> dict:
    return {"type": "video_url", "video_url": {"url": url}}


def ask(client, content, **extra):
    return client.chat.completions.create(
        model="longvid-testbed", messages=[{"role": "user", "content": content}], temperature=0, max_tokens=8,
        extra_body=extra or None,
    )  # fmt: skip


def test_models_and_a_video_by_path_and_by_data_url(live, media, testbed):
    assert [m.id for m in live.models.list().data] == ["longvid-testbed"]
    want = testbed.ask(str(media / "sample.mp4"), QUESTION, frames=16, max_new_tokens=8)
    by_path = ask(live, [video_part(f"file://{media / 'sample.mp4'}"), {"type": "text", "text": QUESTION}], frames=16)
    assert by_path.choices[0].message.content == want.text
    assert by_path.usage.prompt_tokens == want.report.prompt_tokens
    assert by_path.usage.completion_tokens == want.report.generated_tokens
    data = base64.b64encode((media / "sample.mp4").read_bytes()).decode()
    by_data = ask(live, [video_part(f"data:video/mp4;base64,{data}"), {"type": "text", "text": QUESTION}], frames=16)
    assert by_data.choices[0].message.content == want.text


def test_a_kv_budget_by_name_and_in_mm_processor_kwargs(live, media, testbed):
    want = testbed.ask(str(media / "sample.mp4"), QUESTION, frames=64, kv_budget=256, max_new_tokens=8)
    assert want.report.kv_dropped_tokens == 64 * 16 - 256
    content = [video_part(f"file://{media / 'sample.mp4'}"), {"type": "text", "text": QUESTION}]
    by_name = ask(live, content, frames=64, kv_budget=256)
    assert by_name.choices[0].message.content == want.text
    assert by_name.usage.prompt_tokens == want.report.prompt_tokens
    nested = ask(live, content, mm_processor_kwargs={"frames": 64, "kv_budget": "256"})
    assert nested.choices[0].message.content == want.text


def test_frames_streaming_and_a_follow_up(live, media, testbed):
    from PIL import Image

    from longvid.video import sample_frames

    frames = sample_frames(media / "sample.mp4", 16).array
    parts = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        parts.append(
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()},
            }
        )
    want = testbed.ask(np.ascontiguousarray(frames), QUESTION, max_new_tokens=8)
    got = ask(live, [*parts, {"type": "text", "text": QUESTION}])
    assert got.choices[0].message.content == want.text
    stream = live.chat.completions.create(
        model="longvid-testbed", temperature=0, max_tokens=8, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": [*parts, {"type": "text", "text": QUESTION}]}],
    )  # fmt: skip
    pieces = [c for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    assert text == want.text and pieces[-1].usage.completion_tokens == want.report.generated_tokens
    # a follow-up: the conversation so far, then the next question, from the same encoding
    follow = live.chat.completions.create(
        model="longvid-testbed", temperature=0, max_tokens=8,
        messages=[{"role": "user", "content": [*parts, {"type": "text", "text": QUESTION}]},
                  {"role": "assistant", "content": want.text},
                  {"role": "user", "content": "which shape came first ?"}],
    )  # fmt: skip
    session = testbed.chat(np.ascontiguousarray(frames), max_new_tokens=8)
    session.ask(QUESTION)
    assert follow.choices[0].message.content == session.ask("which shape came first ?").text


@pytest.mark.parametrize(
    "content,extra,status,message",
    [
        ([video_part("/etc/passwd"), {"type": "text", "text": "q"}], {}, 403, "outside the allowed media folder"),
        ([video_part("data:video/mp4;base64,AAAA"), {"type": "text", "text": "q"}], {"kv_bits": 3}, 400, "kv_bits"),
        ([video_part("data:video/mp4;base64,AAAA"), {"type": "text", "text": "q"}], {"warp": 1}, 400, "unknown field"),
        ("no video here", {}, 400, "the first user message must carry the video"),
    ],
)
def test_errors_are_openai_error_objects(live, content, extra, status, message):
    with pytest.raises(openai.APIStatusError) as e:
        ask(live, content, **extra)
    assert e.value.status_code == status and message in e.value.message


def test_sampling_and_unknown_models_are_refused(live):
    messages = [{"role": "user", "content": "q"}]
    with pytest.raises(openai.BadRequestError, match="temperature must be 0"):
        live.chat.completions.create(model="longvid-testbed", messages=messages, temperature=0.7)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        live.chat.completions.create(model="gpt-9", messages=messages)


def test_remote_urls_undecodable_videos_and_max_tokens_in_the_requests_words(live):
    with pytest.raises(openai.BadRequestError, match="remote URLs are not fetched"):
        ask(live, [video_part("http://example.com/a.mp4"), {"type": "text", "text": "q"}])
    with pytest.raises(openai.BadRequestError) as e:
        ask(live, [video_part("data:video/mp4;base64,AAAA"), {"type": "text", "text": "q"}])
    assert "longvid-serve" not in e.value.message and "/tmp" not in e.value.message
    with pytest.raises(openai.BadRequestError, match="max_tokens must be >= 1"):
        content = [video_part("data:video/mp4;base64,AAAA"), {"type": "text", "text": "q"}]
        live.chat.completions.create(model="longvid-testbed", max_tokens=0, temperature=0,
                                     messages=[{"role": "user", "content": content}])  # fmt: skip
