"""Questions waiting for, or answered by, the one model: a job per question, run one at a
time by a background worker, and the frame strip the page shows with each answer."""

from __future__ import annotations

import base64
import io
import logging
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from longvid.errors import LongvidError
from longvid.models.inference.request import AskOptions
from longvid.web.errors import message_of

log = logging.getLogger("longvid.serve")
MAX_JOBS_KEPT = 64
MAX_PENDING = 8  # requests waiting for the model before more are refused (429)
CONVERSATION_TTL = 600  # seconds a conversation waits for its follow-up
STRIP_HEIGHT = 72  # px of each frame in the strip


@dataclass
class Job:
    id: str
    question: str
    options: AskOptions
    video: Path
    delete_after: bool
    filename: str
    follow_up_of: str | None = None  # a follow-up continues this job's conversation
    status: str = "queued"  # queued | running | done | error
    stage: str = ""
    done: int = 0
    total: int = 0
    result: dict | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # shown with the answer
    created: float = field(default_factory=time.time)

    def hide_path(self, message: str) -> str:
        """The server's own file names are none of the client's business."""
        return message.replace(str(self.video), self.filename)

    def public(self) -> dict:
        out = {
            "id": self.id,
            "status": self.status,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "filename": self.filename,
            "question": self.question,
            "warnings": self.warnings,
        }
        if self.result is not None:
            out.update(self.result)
        if self.error is not None:
            out["error"] = self.error
        return out


class Worker:
    """Runs jobs one at a time on one loaded model, in a background thread."""

    def __init__(self, model: str | None, device: str, llm=None) -> None:
        self.model_name, self.device = model, device
        self.llm = llm
        self.jobs: dict[str, Job] = {}
        self.queue: queue.Queue[Job] = queue.Queue()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="longvid-worker", daemon=True)
        # the last conversation (one at a time: a new video frees the previous one)
        self.conversation: dict | None = None

    def load(self) -> None:
        from longvid.models import load

        if self.llm is None:
            self.llm = load(self.model_name, device=self.device)
        self.thread.start()

    def submit(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.id] = job
            for old in sorted(self.jobs.values(), key=lambda j: j.created)[:-MAX_JOBS_KEPT]:
                if old.status in ("done", "error"):
                    del self.jobs[old.id]
        self.queue.put(job)

    def call(self, fn):
        """Run ``fn(llm)`` on the worker thread, after the jobs queued before it (one request at
        a time on the one model); a ``concurrent.futures.Future`` of its result. Refused with
        ``Busy`` when ``MAX_PENDING`` requests wait already."""
        from concurrent.futures import Future

        from longvid.web.errors import Busy

        if self.queue.qsize() >= MAX_PENDING:
            raise Busy(f"{MAX_PENDING} requests are waiting for the model; retry later")
        future: Future = Future()
        self.queue.put((fn, future))
        return future

    def _loop(self) -> None:
        while True:
            job = self.queue.get()
            if isinstance(job, tuple):  # a call (the /v1 API): its result or error goes to its future
                fn, future = job
                try:
                    future.set_result(fn(self.llm))
                except BaseException as e:
                    future.set_exception(e)
                continue
            try:
                self._run(job)
            except LongvidError as e:  # bad input: the message is for the user
                job.error, job.status = job.hide_path(message_of(e)), "error"
            except Exception as e:  # a failure of one request never stops the server
                log.exception("job %s failed", job.id)
                job.error, job.status = job.hide_path(f"internal error: {type(e).__name__}: {e}"), "error"
            finally:
                if job.delete_after:
                    job.video.unlink(missing_ok=True)

    def _run(self, job: Job) -> None:
        job.status = "running"

        def progress(stage: str, done: int, total: int) -> None:
            job.stage, job.done, job.total = stage, done, total

        # what reading the video finds (a truncated file, frames that fail) goes to the page;
        # one worker thread: nothing else changes the warning filters meanwhile
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if job.follow_up_of is not None:
                talk = self.conversation
                if talk is None or talk["job"] != job.follow_up_of or time.time() - talk["time"] > CONVERSATION_TTL:
                    raise LongvidError(
                        "that conversation is gone (one at a time, 10 minutes): ask about the video again"
                    )
                answer = talk["session"].ask(job.question)
                strip = talk["strip"]
                talk.update(job=job.id, time=time.time())
            else:
                self.conversation = None  # free the previous video's cache first
                session = self.llm.chat(job.video, job.options, progress=progress)
                answer = session.ask(job.question)
                r = answer.report
                job.stage = "frame strip"
                strip = frame_strip(job.video, r.frame_indices, r.timestamps, r.tokens_per_frame)
                self.conversation = {"job": job.id, "session": session, "strip": strip, "time": time.time()}
            r = answer.report
        for w in caught:
            message = job.hide_path(str(w.message))
            if message not in job.warnings:
                job.warnings.append(message)
        job.result = {"answer": answer.text, "report": r.to_dict(), "strip": strip}
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
