"""``longvid serve``: the API with Starlette's test client, and the page end to end in headless
Chromium (Debian's ``chromium`` driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longvid.probes.tasks import make_item, write_item_video

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from longvid.web.server import create_app

# where the page's screenshot goes: LONGVID_ARTIFACTS when set (to look at it), else the test's own folder
ARTIFACTS = os.environ.get("LONGVID_ARTIFACTS")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def needle_video(tmp_path_factory) -> tuple[Path, str]:
    """A needle probe at the testbed's training length, and its answer."""
    item = make_item("needle", 424242, 16, depth=0.5)
    path = write_item_video(item, tmp_path_factory.mktemp("v") / "needle.mp4")
    return path, item.answer


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(max_upload_mb=0.5)) as c:
        yield c


def wait(client, job: str) -> dict:
    for _ in range(600):
        got = client.get(f"/api/jobs/{job}").json()
        if got["status"] in ("done", "error"):
            return got
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_upload_ask_and_answer(client, needle_video):
    path, answer = needle_video
    up = client.post("/api/upload", content=path.read_bytes(), headers={"X-Filename": "../../etc/passwd"})
    assert up.status_code == 200, up.text
    key = up.json()["upload"]
    stored = list(client.app.state.upload_dir.iterdir())
    assert [p.name for p in stored] == [f"{key}.video"]  # a random name, never the client's
    job = client.post("/api/ask", json={"upload": key, "question": "what colour is the shape with the marker ?"})
    assert job.status_code == 202
    got = wait(client, job.json()["job"])
    assert got["status"] == "done", got
    assert got["answer"] == answer
    assert got["report"]["frames"] == 16 and len(got["strip"]) == 16
    assert [f["index"] for f in got["strip"]] == got["report"]["frame_indices"]
    assert all(f["src"].startswith("data:image/jpeg;base64,") for f in got["strip"])
    assert list(client.app.state.upload_dir.iterdir()) == []  # removed after use
    # an upload is used once
    again = client.post("/api/ask", json={"upload": key, "question": "q"})
    assert again.status_code == 400 and "upload it again" in again.json()["error"]


def test_progressive_pooling_shows_different_tokens_per_frame(client):
    job = client.post(
        "/api/ask", json={"sample": True, "question": "what colour ?", "frames": 8, "pooling": "progressive"}
    )
    got = wait(client, job.json()["job"])
    assert got["status"] == "done", got
    tokens = [f["tokens"] for f in got["strip"]]
    assert len(set(tokens)) == 2 and tokens[0] > tokens[1]  # anchor frames keep more
    assert got["report"]["visual_tokens"] < got["report"]["visual_tokens_before_pooling"]


def test_rejects_non_video_empty_and_too_large(client, tmp_path):
    text = client.post("/api/upload", content=b"hello, this is not a video\n" * 10)
    assert text.status_code == 400 and "not a video" in text.json()["error"]
    empty = client.post("/api/upload", content=b"")
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    big = client.post("/api/upload", content=b"0" * (600 * 1024))
    assert big.status_code == 413 and "0.5 MB" in big.json()["error"]
    assert list(client.app.state.upload_dir.iterdir()) == []


def test_bad_requests_get_messages_and_the_server_keeps_going(client, monkeypatch):
    cases = [
        ({"sample": True, "question": ""}, "type a question"),
        ({"sample": True, "question": "q", "frames": "many"}, "whole number"),
        ({"sample": True, "question": "q", "extend": "warp"}, "unknown extend"),
        ({"question": "q"}, "choose a video"),
        ({"question": "q", "upload": ["a"]}, "upload must be text"),  # not a key: no traceback, no 500
        ({"question": "q", "upload": {"a": 1}}, "upload must be text"),
        ({"question": "q", "upload": "nosuchkey"}, "upload it again"),
        ([], "JSON object"),
        # typed: nothing is turned into text or truth that was not sent as such
        ({"sample": True, "question": ["q"]}, "question must be text"),
        ({"sample": True, "question": 123}, "question must be text"),
        ({"sample": True, "question": {"a": 1}}, "question must be text"),
        ({"sample": True, "question": True}, "question must be text"),
        ({"sample": "no", "question": "q"}, "sample must be true or false"),
        ({"sample": True, "question": "q", "frames": True}, "frames must be a whole number"),
        ({"sample": True, "question": "q", "frames": 0}, "frames must be >= 1"),
        ({"sample": True, "question": "q", "keep": "half"}, "keep must be a number"),
        ({"sample": True, "question": "q", "temperature": 0}, "unknown field: temperature"),
        ({"sample": True, "question": "q", "kv_budget": "lots"}, "kv_budget must be a token count"),
        ({"sample": True, "question": "q", "kv_budget": 0}, "kv_budget in tokens must be a whole number >= 1"),
    ]
    for body, message in cases:
        r = client.post("/api/ask", json=body)
        assert r.status_code == 400 and message in r.json()["error"], (body, r.text)
    r = client.post("/api/ask", json={"sample": True, "question": "q", "kv_bits": 3})
    assert r.status_code == 400 and "choose from" in r.json()["error"]
    # a request that fails inside the model (the memory guard refuses it) is a job error...
    from longvid.models.inference import budget

    monkeypatch.setattr(budget, "available_bytes", lambda device: 2**20)
    job = client.post("/api/ask", json={"sample": True, "question": "q", "frames": 64})
    failed = wait(client, job.json()["job"])
    assert failed["status"] == "error" and "beyond the weights" in failed["error"]
    monkeypatch.undo()
    # ...and the next request is served
    ok = client.post("/api/ask", json={"sample": True, "question": "what colour ?", "frames": 4})
    assert wait(client, ok.json()["job"])["status"] == "done"
    assert client.get("/api/jobs/nope").status_code == 404
    # the body of a question is bounded, and refused by its type (413), not by its wording
    huge = client.post("/api/ask", content=b'{"question": "' + b"x" * (100 * 1024) + b'"}')
    assert huge.status_code == 413 and "larger than 64 KB" in huge.json()["error"]
    assert client.post("/api/ask", content=b"\xff\xfe").status_code == 400


def test_a_truncated_upload_says_so_on_upload_and_with_the_answer(client, tmp_path):
    from tests.support import truncated_faststart_mp4

    cut = truncated_faststart_mp4(tmp_path, 120, keep=0.25)
    up = client.post("/api/upload", content=cut.read_bytes(), headers={"X-Filename": "clip.mp4"})
    assert up.status_code == 200, up.text
    got = up.json()
    assert 0 < got["frames"] < 120  # what is really there, not what the header promises
    assert got["warnings"] and "truncated" in got["warnings"][0] and "clip.mp4" in got["warnings"][0]
    assert str(client.app.state.upload_dir) not in " ".join(got["warnings"])
    job = client.post("/api/ask", json={"upload": got["upload"], "question": "what colour ?", "frames": 4})
    done = wait(client, job.json()["job"])
    assert done["status"] == "done" and any("truncated" in w for w in done["warnings"])


def test_failed_start_leaves_no_upload_folder(tmp_path):
    from longvid.errors import ModelLoadError

    app = create_app(model=str(tmp_path / "missing"))
    folder = app.state.upload_dir
    with pytest.raises(ModelLoadError), TestClient(app):
        pass
    assert not folder.exists()


# ------------------------------------------------------------------ browser, end to end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "longvid", "serve", "--port", str(port), "--max-upload-mb", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/api/info", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError("longvid serve exited: " + proc.stdout.read()) from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        message = "Debian's chromium is not installed (apt-get install chromium): the browser tests cannot run"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it; missing there is a failure, not a pass
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        yield b
        b.close()


def test_page_upload_ask_answer_and_strip(server, browser, needle_video, tmp_path):
    path, answer = needle_video
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("text=trained on 16 frames")
    page.set_input_files("#video", str(path))
    page.fill("#question", "what colour is the shape with the marker ?")
    page.click("#go")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page.inner_text("#answer") == answer
    assert page.locator("#strip figure img").count() == 16
    assert "visual tokens" in page.inner_text("#report")
    shots = Path(ARTIFACTS) if ARTIFACTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "serve.png"), full_page=True)
    assert (shots / "serve.png").stat().st_size > 10_000  # a rendered page, not an empty image
    page.close()


def test_page_refuses_a_text_file(server, browser, tmp_path):
    note = tmp_path / "notes.txt"
    note.write_text("not a video\n" * 50)
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("text=trained on 16 frames")
    page.set_input_files("#video", str(note))
    page.click("#go")
    page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
    assert "not a video" in page.inner_text("#error")
    assert page.locator("#result").is_hidden()
    page.close()


def test_a_kv_budget_from_the_page_holds_and_is_reported(client):
    job = client.post("/api/ask", json={"sample": True, "question": "what colour ?", "frames": 16, "kv_budget": 64})
    done = wait(client, job.json()["job"])
    assert done["status"] == "done", done
    report = done["report"]
    assert report["kv_budget"] == "64 tokens" and report["kv_budget_tokens"] == 64
    assert report["kv_dropped_tokens"] == 16 * 16 - 64  # the grid tokens past the budget; the newline stays


def test_page_asks_under_a_kv_budget(server, browser):
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("text=trained on 16 frames")
    page.check("#sample")
    page.fill("#frames", "32")
    page.fill("#kv_budget", "128")
    page.click("#go")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert "budget 128 tokens: 128 visual tokens a layer, 384 of 513 dropped" in page.inner_text("#report")
    page.close()


def test_follow_up_questions_continue_the_last_conversation(client):
    first = wait(
        client, client.post("/api/ask", json={"sample": True, "question": "what colour ?", "frames": 8}).json()["job"]
    )
    assert first["status"] == "done"
    job = client.post("/api/ask", json={"follow_up": first["id"], "question": "and which shape came first ?"})
    assert job.status_code == 202
    follow = wait(client, job.json()["job"])
    assert follow["status"] == "done" and follow["report"]["frames"] == 8
    assert follow["report"]["prompt_tokens"] > first["report"]["prompt_tokens"]  # the first turn is in it
    assert follow["strip"] == first["strip"]  # the same frames
    # one conversation at a time: a new video ends the previous one
    wait(client, client.post("/api/ask", json={"sample": True, "question": "q", "frames": 4}).json()["job"])
    stale = wait(client, client.post("/api/ask", json={"follow_up": follow["id"], "question": "q"}).json()["job"])
    assert stale["status"] == "error" and "conversation is gone" in stale["error"]
    assert client.post("/api/ask", json={"follow_up": "nope", "question": "q"}).status_code == 400


def test_uploads_held_are_bounded_in_total_and_in_number(tmp_path):
    """The server holds at most max_total_bytes of uploads (507 past it) and MAX_HELD of them
    (429): ten minutes of uploads can no longer fill the disk."""
    import asyncio

    from longvid.bundled import SAMPLE_VIDEO
    from longvid.web import uploads as uploads_mod
    from longvid.web.errors import InsufficientStorage, TooManyRequests, status_of
    from longvid.web.uploads import Uploads

    video = SAMPLE_VIDEO.read_bytes()

    async def body(data: bytes, chunk: int = 65536):
        for i in range(0, len(data), chunk):
            yield data[i : i + chunk]

    async def scenario():
        ups = Uploads(max_bytes=len(video) + 10, max_total_bytes=2 * len(video) + 10)
        try:
            await ups.store(body(video), "a.mp4")
            await ups.store(body(video), "b.mp4")
            with pytest.raises(InsufficientStorage) as e:
                await ups.store(body(video), "c.mp4")
            assert status_of(e.value) == 507
            assert len(list(ups.folder.iterdir())) == 2  # the refused one is not kept
            ups.take(next(iter(ups.held)))  # one question asked: room again
            await ups.store(body(video), "d.mp4")
            many = Uploads(max_bytes=len(video) + 10, max_total_bytes=10**12)
            try:
                for k in range(uploads_mod.MAX_HELD):
                    await many.store(body(video), f"{k}.mp4")
                with pytest.raises(TooManyRequests) as e:
                    await many.store(body(video), "one-more.mp4")
                assert status_of(e.value) == 429
            finally:
                many.close()
        finally:
            ups.close()

    # in a thread of its own: the browser tests' playwright keeps an event loop running here
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_5"])
def test_the_page_serves_the_qwen3_families(tiny_checkpoints, family):
    """The page's API on a tiny Qwen3-VL / Qwen3.5 checkpoint: an answer, its report and a
    follow-up from the same conversation."""
    with TestClient(create_app(model=str(tiny_checkpoints[family]), max_upload_mb=0.5)) as c:
        first = wait(
            c, c.post("/api/ask", json={"sample": True, "question": "what colour ?", "frames": 8}).json()["job"]
        )
        assert first["status"] == "done" and first["report"]["family"] == family
        assert first["report"]["frames"] == 8 and len(first["strip"]) == 8
        follow = c.post("/api/ask", json={"question": "and which came first ?", "follow_up": first["id"]}).json()
        assert wait(c, follow["job"])["status"] == "done"
