"""The API's routes over the worker and the uploads: every handler turns a ``LongvidError``
into ``{"error": message}`` with the status its type names (``web.errors``)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from longvid.errors import InvalidRequestError, LongvidError
from longvid.extend.modes import EXTEND_MODES, KV_BITS, POOLING_MODES, REDUCE_MODES
from longvid.models.inference.request import AskOptions
from longvid.web.errors import BadRequest, Gone, NotFound, PayloadTooLarge, message_of, status_of
from longvid.web.jobs import Job, Worker
from longvid.web.uploads import Uploads

STATIC = Path(__file__).parent / "static"
QUESTION_MAX = 500
FRAMES_MAX = 2048
ASK_BODY_MAX = 64 * 1024  # a question and a few options: anything larger is refused while it streams


# what the page may ask, beyond which a request is refused before it queues
PAGE_OPTIONS = ("frames", "extend", "pooling", "reduce", "keep", "kv_bits", "kv_budget",
                "fps", "min_frames", "max_frames", "min_pixels", "max_pixels", "total_pixels")  # fmt: skip
BODY_KEYS = ("question", "upload", "sample", "follow_up")


def parse_question(form: object) -> tuple[str, AskOptions]:
    """The question and the ``ask`` options of an /api/ask body, checked: JSON types as
    they are (a number is a number, ``sample`` is true or false), unknown keys refused."""
    if not isinstance(form, dict):
        raise BadRequest("send the request as a JSON object")
    unknown = sorted(str(k) for k in form if k not in BODY_KEYS and k not in PAGE_OPTIONS)
    if unknown:
        raise BadRequest(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}; "
                         f"known: {', '.join(BODY_KEYS + PAGE_OPTIONS)}")  # fmt: skip
    question = form.get("question")
    if question is None or (isinstance(question, str) and not question.strip()):
        raise BadRequest("type a question")
    if not isinstance(question, str):
        raise BadRequest(f"question must be text (got {type(question).__name__})")
    question = question.strip()
    if len(question) > QUESTION_MAX:
        raise BadRequest(f"the question is longer than {QUESTION_MAX} characters")
    for key in ("sample",):
        if key in form and not isinstance(form[key], bool):
            raise BadRequest(f"{key} must be true or false (got {form[key]!r})")
    for key in ("upload", "follow_up"):
        if form.get(key) is not None and not isinstance(form[key], str):
            raise BadRequest(f"{key} must be text (got {form[key]!r})")
    try:
        options = AskOptions.from_mapping({k: form[k] for k in PAGE_OPTIONS if k in form})
    except InvalidRequestError as e:
        raise BadRequest(str(e)) from None
    for name in ("frames", "max_frames", "min_frames"):
        if (getattr(options, name) or 0) > FRAMES_MAX:
            raise BadRequest(f"{name} must be between 1 and {FRAMES_MAX} (got {getattr(options, name)})")
    if options.fps is not None and options.max_frames is None:  # a budget's default, 768, is within the page's cap
        options = options.replace(max_frames=min(768, FRAMES_MAX))
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
    return JSONResponse({"error": message_of(error)}, status_code=status_of(error))


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
        from starlette.requests import ClientDisconnect

        try:
            self.uploads.check_length(request.headers.get("content-length"))
            key, up, info = await self.uploads.store(request.stream(), name)
        except LongvidError as e:
            return error_response(e)
        except ClientDisconnect:  # the client went away mid-upload: nothing to answer, nothing to log
            return JSONResponse({"error": "the upload was interrupted"}, status_code=400)
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
            if follow_up:
                last = self.worker.jobs.get(follow_up)
                if last is None:
                    raise Gone("that conversation is gone (one at a time, 10 minutes): ask about the video again")
                video, filename, delete_after, found = last.video, last.filename, False, ()
                options = last.options  # the conversation's video, frames and methods
            elif form.get("upload"):
                up = self.uploads.take(form["upload"])
                video, filename, delete_after, found = up.path, up.name, True, up.warnings
            elif form.get("sample") is True:
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
