"""The API's routes over the worker and the uploads: every handler turns a ``LongvidError``
into ``{"error": message}`` with the status its type names (``web.errors``)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from longvid.errors import LongvidError
from longvid.extend.modes import EXTEND_MODES, KV_BITS, POOLING_MODES, REDUCE_MODES
from longvid.web.errors import BadRequest, Gone, NotFound, PayloadTooLarge, status_of
from longvid.web.jobs import Job, Worker
from longvid.web.uploads import Uploads

STATIC = Path(__file__).parent / "static"
QUESTION_MAX = 500
FRAMES_MAX = 2048
ASK_BODY_MAX = 64 * 1024  # a question and a few options: anything larger is refused while it streams


def _int(form: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = form.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise BadRequest(f"{name} must be a whole number (got {raw!r})") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high} (got {value})")
    return value


def _fraction(form: dict, name: str, default: float) -> float:
    raw = form.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(str(raw))
    except ValueError:
        raise BadRequest(f"{name} must be a number (got {raw!r})") from None
    if not 0 < value <= 1:
        raise BadRequest(f"{name} must be in (0, 1] (got {value})")
    return value


def _choice(form: dict, name: str, default: str, choices) -> str:
    value = str(form.get(name) or default)
    if value not in [str(c) for c in choices]:
        raise BadRequest(f"unknown {name} {value!r}; choose from {', '.join(map(str, choices))}")
    return value


def parse_question(form: object) -> tuple[str, dict]:
    """The question and the ``ask`` options of an /api/ask body, checked."""
    if not isinstance(form, dict):
        raise BadRequest("send the request as a JSON object")
    question = str(form.get("question") or "").strip()
    if not question:
        raise BadRequest("type a question")
    if len(question) > QUESTION_MAX:
        raise BadRequest(f"the question is longer than {QUESTION_MAX} characters")
    options = {
        "frames": _int(form, "frames", None, 1, FRAMES_MAX),
        "extend": _choice(form, "extend", "none", EXTEND_MODES),
        "pooling": _choice(form, "pooling", "uniform", POOLING_MODES),
        "reduce": _choice(form, "reduce", "none", REDUCE_MODES),
        "keep": _fraction(form, "keep", 0.25),
        "kv_bits": int(_choice(form, "kv_bits", "16", KV_BITS)),
    }
    return question, options


async def read_json(request: Request, limit: int) -> object:
    """The body as JSON, refused once it passes ``limit`` bytes (before it is all in memory)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the request is larger than {limit // 1024} KB")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("send the request as JSON") from None


def error_response(error: LongvidError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=status_of(error))


class Api:
    def __init__(self, worker: Worker, uploads: Uploads, sample: Path, max_upload_mb: float) -> None:
        self.worker, self.uploads, self.sample, self.max_upload_mb = worker, uploads, sample, max_upload_mb

    async def index(self, request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def info(self, request: Request):
        llm = self.worker.llm
        return JSONResponse(
            {
                "model": "longvid testbed" if self.worker.model_name is None else llm.adapter.name,
                "family": llm.family,
                "trained_frames": llm.trained_frames,
                "extend": list(EXTEND_MODES),
                "pooling": list(POOLING_MODES),
                "reduce": list(REDUCE_MODES),
                "kv_bits": list(KV_BITS),
                "max_upload_mb": self.max_upload_mb,
                "sample": self.sample.name,
            }
        )

    async def upload(self, request: Request):
        """The video is the raw request body (``X-Filename`` names it for display)."""
        name = (request.headers.get("x-filename") or "upload")[:200]
        try:
            self.uploads.check_length(request.headers.get("content-length"))
            key, up, info = await self.uploads.store(request.stream(), name)
        except LongvidError as e:
            return error_response(e)
        size = up.path.stat().st_size
        return JSONResponse(
            {
                "upload": key,
                "bytes": size,
                "frames": info.frame_count,
                "seconds": info.duration,
                "name": name,
                "warnings": list(up.warnings),
            }
        )

    async def ask(self, request: Request):
        try:
            form = await read_json(request, ASK_BODY_MAX)
            question, options = parse_question(form)
            follow_up = form.get("follow_up")
            if follow_up is not None and not isinstance(follow_up, str):
                raise BadRequest("follow_up names the job whose conversation continues")
            if follow_up:
                last = self.worker.jobs.get(follow_up)
                if last is None:
                    raise Gone("that conversation is gone (one at a time, 10 minutes): ask about the video again")
                video, filename, delete_after, found = last.video, last.filename, False, ()
                options = last.options  # the conversation's video, frames and methods
            elif form.get("upload"):
                up = self.uploads.take(form["upload"])
                video, filename, delete_after, found = up.path, up.name, True, up.warnings
            elif form.get("sample"):
                video, filename, delete_after, found = self.sample, self.sample.name, False, ()
            else:
                raise BadRequest("choose a video file to upload, or use the sample")
        except LongvidError as e:
            return error_response(e)
        job = Job(uuid.uuid4().hex, question, options, video, delete_after, filename, warnings=list(found),
                  follow_up_of=follow_up or None)  # fmt: skip
        self.worker.submit(job)
        return JSONResponse({"job": job.id}, status_code=202)

    async def job_status(self, request: Request):
        job = self.worker.jobs.get(request.path_params["job_id"])
        if job is None:
            return error_response(NotFound("no such job"))
        return JSONResponse(job.public())
