"""``longvid serve``: a web page to ask a question about a video and see what the model saw.

Starlette + uvicorn with one static page (``static/index.html``) rather than Gradio: the page
needs a frame strip, tokens per frame and a progress bar, which are a few lines of HTML here,
while the things that matter for a server others can reach (a hard upload cap enforced while
the body streams in, uploads stored under random names in the server's own temporary folder
and deleted after use, one worker so that requests never fight over one model) are easier to
guarantee in 300 lines we own than through Gradio's upload and queue machinery and its ~40
dependencies.

API (JSON): ``GET /api/info``; ``POST /api/upload`` (the video as the raw body) -> ``{"upload":
id}``; ``POST /api/ask`` (question, frames, extend, pooling, kv_bits, and ``upload`` or
``sample``) -> ``{"job": id}``; ``GET
/api/jobs/{id}`` -> status, progress (stage, done, total), and when done the answer, the
report and the frame strip (JPEG data URLs with index, timestamp and tokens).
"""

from __future__ import annotations

import base64
import io
import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from longvid.errors import LongvidError

log = logging.getLogger("longvid.serve")
STATIC = Path(__file__).parent / "static"
MAX_JOBS_KEPT = 64
STRIP_HEIGHT = 72  # px of each frame in the strip
QUESTION_MAX = 500
FRAMES_MAX = 2048
UPLOAD_TTL = 600  # seconds an upload waits for its question


@dataclass
class Job:
    id: str
    question: str
    options: dict
    video: Path
    delete_after: bool
    filename: str
    status: str = "queued"  # queued | running | done | error
    stage: str = ""
    done: int = 0
    total: int = 0
    result: dict | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)

    def public(self) -> dict:
        out = {
            "id": self.id,
            "status": self.status,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "filename": self.filename,
            "question": self.question,
        }
        if self.result is not None:
            out.update(self.result)
        if self.error is not None:
            out["error"] = self.error
        return out


class Worker:
    """Runs jobs one at a time on one loaded model, in a background thread."""

    def __init__(self, model: str | None, device: str) -> None:
        self.model_name, self.device = model, device
        self.llm = None
        self.jobs: dict[str, Job] = {}
        self.queue: queue.Queue[Job] = queue.Queue()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="longvid-worker", daemon=True)

    def load(self) -> None:
        from longvid.models import load

        self.llm = load(self.model_name, device=self.device)
        self.thread.start()

    def submit(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.id] = job
            for old in sorted(self.jobs.values(), key=lambda j: j.created)[:-MAX_JOBS_KEPT]:
                if old.status in ("done", "error"):
                    del self.jobs[old.id]
        self.queue.put(job)

    def _loop(self) -> None:
        while True:
            job = self.queue.get()
            try:
                self._run(job)
            except LongvidError as e:  # bad input: the message is for the user
                job.error, job.status = str(e), "error"
            except Exception as e:  # a failure of one request never stops the server
                log.exception("job %s failed", job.id)
                job.error, job.status = f"internal error: {type(e).__name__}: {e}", "error"
            finally:
                if job.delete_after:
                    job.video.unlink(missing_ok=True)

    def _run(self, job: Job) -> None:
        job.status = "running"

        def progress(stage: str, done: int, total: int) -> None:
            job.stage, job.done, job.total = stage, done, total

        answer = self.llm.ask(job.video, job.question, progress=progress, **job.options)
        r = answer.report
        job.stage = "frame strip"
        job.result = {
            "answer": answer.text,
            "report": r.to_dict(),
            "strip": frame_strip(job.video, r.frame_indices, r.timestamps, r.tokens_per_frame),
        }
        job.status = "done"


def frame_strip(video: Path, indices: list[int], timestamps: list[float], tokens: list[float]) -> list[dict]:
    """The sampled frames as small JPEG data URLs, with index, timestamp and tokens."""
    from PIL import Image

    from longvid.video import FrameReader

    reader = FrameReader(video)
    w, h = reader.info.width, reader.info.height
    size = (max(2, round(w * STRIP_HEIGHT / h / 2) * 2), STRIP_HEIGHT)
    frames = reader.sample(indices=indices, size=size)
    out = []
    for i, img in enumerate(frames.array):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=80)
        out.append(
            {
                "index": int(frames.indices[i]),
                "time": float(timestamps[i]) if i < len(timestamps) else None,
                "tokens": tokens[i] if i < len(tokens) else None,
                "src": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(),
            }
        )
    return out


def _int(form: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = form.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise LongvidError(f"{name} must be a whole number (got {raw!r})") from None
    if not low <= value <= high:
        raise LongvidError(f"{name} must be between {low} and {high} (got {value})")
    return value


def _choice(form: dict, name: str, default: str, choices) -> str:
    value = str(form.get(name) or default)
    if value not in choices:
        raise LongvidError(f"unknown {name} {value!r}; choose from {', '.join(map(str, choices))}")
    return value


def create_app(
    model: str | None = None,
    device: str = "cpu",
    max_upload_mb: float = 512,
    sample: Path | None = None,
):
    """The Starlette app: loads the model (the bundled testbed by default) at start-up."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Route

    from longvid.extend.kvcache import KV_BITS
    from longvid.extend.rope import EXTEND_MODES
    from longvid.video import probe

    if sample is None:
        from longvid.testbed.sample import default_sample

        sample = Path(default_sample())
    cap = int(max_upload_mb * 2**20)
    upload_dir = Path(tempfile.mkdtemp(prefix="longvid-serve-"))
    worker = Worker(model, device)

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def index(request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def info(request: Request):
        llm = worker.llm
        return JSONResponse(
            {
                "model": "longvid testbed" if worker.model_name is None else llm.adapter.name,
                "family": llm.family,
                "trained_frames": llm.trained_frames,
                "extend": list(EXTEND_MODES),
                "pooling": ["uniform", "progressive"],
                "kv_bits": list(KV_BITS),
                "max_upload_mb": max_upload_mb,
                "sample": sample.name,
            }
        )

    uploads: dict[str, tuple[Path, str, float]] = {}  # id -> (path, client file name, time)

    def sweep() -> None:
        """Delete uploads nobody asked about within UPLOAD_TTL seconds."""
        now = time.time()
        for key, (path, _, t) in list(uploads.items()):
            if now - t > UPLOAD_TTL:
                path.unlink(missing_ok=True)
                uploads.pop(key, None)

    async def upload(request: Request):
        """The video is the raw request body, streamed to a random name in the server's own
        folder; the cap is enforced while it streams in; anything not a video is deleted."""
        sweep()
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > cap:
            return error(f"upload too large: the limit is {max_upload_mb:g} MB", 413)
        key = uuid.uuid4().hex
        path = upload_dir / f"{key}.video"  # the client's file name is never part of a path
        size = 0
        try:
            with path.open("wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > cap:
                        raise LongvidError(f"upload too large: the limit is {max_upload_mb:g} MB")
                    f.write(chunk)
            if size == 0:
                raise LongvidError("the uploaded file is empty")
            try:
                info = probe(path)
            except LongvidError as e:
                raise LongvidError(f"not a video longvid can read ({e})") from None
        except LongvidError as e:
            path.unlink(missing_ok=True)
            return error(str(e), 413 if "too large" in str(e) else 400)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        name = (request.headers.get("x-filename") or "upload")[:200]
        uploads[key] = (path, name, time.time())
        return JSONResponse(
            {"upload": key, "bytes": size, "frames": info.frame_count, "seconds": info.duration, "name": name}
        )

    async def ask(request: Request):
        sweep()
        try:
            try:
                form = await request.json()
            except ValueError:
                raise LongvidError("send the request as JSON") from None
            if not isinstance(form, dict):
                raise LongvidError("send the request as a JSON object")
            question = str(form.get("question") or "").strip()
            if not question:
                raise LongvidError("type a question")
            if len(question) > QUESTION_MAX:
                raise LongvidError(f"the question is longer than {QUESTION_MAX} characters")
            options = {
                "frames": _int(form, "frames", None, 1, FRAMES_MAX),
                "extend": _choice(form, "extend", "none", EXTEND_MODES),
                "pooling": _choice(form, "pooling", "uniform", ("uniform", "progressive")),
                "kv_bits": int(_choice(form, "kv_bits", "16", tuple(str(b) for b in KV_BITS))),
            }
            key = form.get("upload")
            if key:
                if key not in uploads:
                    raise LongvidError("that upload is gone (uploads are kept 10 minutes): upload it again")
                path, filename, _ = uploads.pop(key)
                video, delete_after = path, True
            elif form.get("sample"):
                video, filename, delete_after = sample, sample.name, False
            else:
                raise LongvidError("choose a video file to upload, or use the sample")
        except LongvidError as e:
            return error(str(e))
        job = Job(
            id=uuid.uuid4().hex,
            question=question,
            options=options,
            video=video,
            delete_after=delete_after,
            filename=filename,
        )
        worker.submit(job)
        return JSONResponse({"job": job.id}, status_code=202)

    async def job_status(request: Request):
        job = worker.jobs.get(request.path_params["job_id"])
        if job is None:
            return error("no such job", 404)
        return JSONResponse(job.public())

    def startup() -> None:
        worker.load()

    def shutdown() -> None:
        shutil.rmtree(upload_dir, ignore_errors=True)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        startup()
        try:
            yield
        finally:
            shutdown()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/info", info),
            Route("/api/upload", upload, methods=["POST"]),
            Route("/api/ask", ask, methods=["POST"]),
            Route("/api/jobs/{job_id}", job_status),
        ],
        lifespan=lifespan,
    )
    app.state.worker = worker
    app.state.upload_dir = upload_dir
    return app


def serve(
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "cpu",
    max_upload_mb: float = 512,
) -> None:
    """Run the page with uvicorn until interrupted."""
    import uvicorn

    app = create_app(model, device=device, max_upload_mb=max_upload_mb)
    print(f"longvid serve: http://{host}:{port}/  (uploads up to {max_upload_mb:g} MB)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
