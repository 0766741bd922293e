"""An OpenAI-compatible API on ``longvid serve``: ``GET /v1/models`` and ``POST
/v1/chat/completions``, so the clients people already run (the ``openai`` package, lmms-eval's
and VLMEvalKit's API models, agent frameworks) can ask longvid about a video.

A request is OpenAI's chat schema. The first user message carries the video: one
``video_url`` part (a ``data:video/...;base64,`` URL; a ``file://`` URL or plain path inside
``--allowed-local-media-path``; or an upload id from ``/api/upload``), or several ``image_url``
parts taken as the frames of one video, in order. Later user messages are follow-ups and the
assistant messages between them the earlier answers (one encoding of the video serves the whole
conversation: the last session is kept). longvid's own options go in the body by their names
(``AskOptions``: ``frames`` or ``fps`` and its budgets, ``extend``, ``pooling``, ``reduce``,
``keep``, ``kv_bits``, ...), or in ``mm_processor_kwargs`` as vLLM takes them; unknown keys are
refused. Decoding is greedy: ``temperature`` 0 (or absent), ``n`` 1; ``max_tokens`` /
``max_completion_tokens``, ``stop`` and ``stream`` (server-sent events ending ``data: [DONE]``)
are honoured, and ``usage`` counts the prompt's tokens (the video's included) and the answer's.
Errors are OpenAI's error object with the status: 400 bad request, 403 a path outside the
allowed folder, 404 unknown model, 413 too large, 429 queue full.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import time
import uuid
from pathlib import Path

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from longvid.errors import InvalidRequestError, LongvidError
from longvid.models.inference.request import AskOptions, check_question
from longvid.web.errors import BadRequest, Forbidden, HTTPError, NotFound, PayloadTooLarge, message_of, status_of
from longvid.web.routes import read_json

CHAT_KEYS = ("model", "messages", "max_tokens", "max_completion_tokens", "stop", "temperature", "top_p", "n",
             "stream", "stream_options", "seed", "user", "mm_processor_kwargs", "media_io_kwargs")  # fmt: skip
# vLLM's media_io_kwargs {"video": {...}} (lmms-eval's openai_compatible with pass_video_url sends it)
MEDIA_IO_VIDEO = {"num_frames": "frames", "fps": "fps"}
BODY_MAX = 64 * 2**20  # a request with a video inside as base64


def error(e: LongvidError) -> JSONResponse:
    kind = "not_found_error" if isinstance(e, NotFound) else "invalid_request_error"
    return JSONResponse({"error": {"message": message_of(e), "type": kind, "param": None, "code": None}},
                        status_code=status_of(e))  # fmt: skip


class OpenAIApi:
    def __init__(self, worker, uploads, model_id: str, allowed_media, max_upload_bytes: int) -> None:
        self.worker, self.uploads, self.model_id = worker, uploads, model_id
        folders = (
            [] if allowed_media is None else [allowed_media] if isinstance(allowed_media, str | Path) else allowed_media
        )
        self.allowed = [Path(f).resolve() for f in folders]
        self.max_upload_bytes = max_upload_bytes
        self.session = None  # (video key, options, VideoSession): the last conversation's encoding

    async def models(self, request: Request):
        return JSONResponse({"object": "list", "data": [
            {"id": self.model_id, "object": "model", "created": 0, "owned_by": "longvid"}]})  # fmt: skip

    async def chat(self, request: Request):
        try:
            body = await self._body(request)
            call = self._parse(body)
            future = self.worker.call(lambda llm: self._answer(llm, call))
            text, usage = await asyncio.wrap_future(future)
        except LongvidError as e:
            # the server's own file names are none of the client's business
            message = message_of(e).replace(str(self.uploads.folder) + "/", "")
            message = re.sub(r"\b[0-9a-f]{32}\.video\b", "the video sent", message)
            return error(type(e)(message) if isinstance(e, HTTPError) else BadRequest(message))
        for stop in call["stop"]:
            if stop and stop in text:
                text = text.split(stop)[0]
        reply_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if call["stream"]:
            return StreamingResponse(self._events(reply_id, created, text, usage, call), media_type="text/event-stream")
        return JSONResponse({
            "id": reply_id, "object": "chat.completion", "created": created, "model": self.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        })  # fmt: skip

    async def _body(self, request: Request) -> dict:
        body = await read_json(request, BODY_MAX)  # the page's reader: refused while it streams past the cap
        if not isinstance(body, dict):
            raise BadRequest("send the request as a JSON object")
        return body

    # ------------------------------------------------------------------ the request

    def _parse(self, body: dict) -> dict:
        unknown = sorted(k for k in body if k not in CHAT_KEYS and k not in AskOptions.names())
        if unknown:
            raise BadRequest(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        model = body.get("model")
        if model not in (None, self.model_id, "longvid"):
            raise NotFound(f"the model {model!r} does not exist; this server serves {self.model_id!r}")
        temperature = body.get("temperature")
        if temperature not in (None, 0, 0.0):
            raise BadRequest(f"temperature must be 0: longvid decodes greedily (got {temperature!r})")
        if body.get("n", 1) != 1:
            raise BadRequest("n must be 1")
        extra = body.get("mm_processor_kwargs") or {}
        if not isinstance(extra, dict):
            raise BadRequest("mm_processor_kwargs must be an object")
        media = (body.get("media_io_kwargs") or {}).get("video") or {}
        if not isinstance(media, dict) or any(k not in MEDIA_IO_VIDEO for k in media):
            raise BadRequest(f"media_io_kwargs.video takes {', '.join(MEDIA_IO_VIDEO)}")
        extra = {**{MEDIA_IO_VIDEO[k]: v for k, v in media.items()}, **extra}
        fields = {k: v for k, v in body.items() if k in AskOptions.names()}
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        try:
            options = AskOptions.from_mapping({**fields, **extra, "max_new_tokens": limit}, where=" in the request")
        except InvalidRequestError as e:  # in the request's own words
            raise BadRequest(str(e).replace("max_new_tokens", "max_tokens")) from None
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise BadRequest("stop must be a string or a list of strings")
        video, key, turns = self._conversation(body.get("messages"))
        return {"options": options, "video": video, "key": key, "turns": turns, "stop": stop,
                "stream": bool(body.get("stream")), "usage_in_stream": bool((body.get("stream_options") or {})
                                                                            .get("include_usage"))}  # fmt: skip

    def _conversation(self, messages) -> tuple[object, str, list[tuple[str, str | None]]]:
        """(the video, a key naming it, the (question, answer) turns: the last answer None)."""
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list")
        turns: list[list] = []
        video = key = None
        for k, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
                raise BadRequest(f"messages[{k}] must be an object with role user, assistant or system")
            if m["role"] == "system":
                raise BadRequest("system messages are not supported: longvid uses the checkpoint's own template")
            text, parts = self._content(m.get("content"), k)
            if m["role"] == "assistant":
                if not turns or turns[-1][1] is not None:
                    raise BadRequest(f"messages[{k}]: an assistant message must follow a user message")
                turns[-1][1] = text
                continue
            if turns and turns[-1][1] is None:
                raise BadRequest(f"messages[{k}]: two user messages in a row")
            if parts:
                if video is not None:
                    raise BadRequest("one video per conversation: put it in the first user message")
                video, key = self._video(parts)
            elif video is None:
                raise BadRequest("the first user message must carry the video (a video_url part, or image_url frames)")
            turns.append([check_question(text) if text.strip() else "", None])
        if turns[-1][1] is not None:
            raise BadRequest("the last message must be the user's question")
        if not turns[-1][0]:
            raise BadRequest("the last user message has no question text")
        return video, key, [tuple(t) for t in turns]

    def _content(self, content, k: int) -> tuple[str, list[dict]]:
        if isinstance(content, str):
            return content, []
        if not isinstance(content, list):
            raise BadRequest(f"messages[{k}].content must be text or a list of parts")
        texts, media = [], []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind in ("video_url", "image_url") and isinstance(part.get(kind), dict | str):
                media.append(part)
            else:
                raise BadRequest(f"messages[{k}]: a part must be text, video_url or image_url")
        return "\n".join(texts), media

    def _video(self, parts: list[dict]):
        kinds = {p["type"] for p in parts}
        if kinds == {"video_url"} and len(parts) == 1:
            url = parts[0]["video_url"]
            url = url.get("url") if isinstance(url, dict) else url
            return self._video_from(url), str(url)[:512]
        if kinds == {"image_url"}:
            return self._frames([p["image_url"] for p in parts]), f"frames:{len(parts)}:{hash(str(parts)[:4096])}"
        raise BadRequest("a conversation's video is one video_url part, or image_url parts (its frames)")

    def _video_from(self, url) -> Path:
        if not isinstance(url, str) or not url:
            raise BadRequest("video_url.url must be text")
        if url.startswith("data:"):
            head, _, data = url.partition(",")
            if not head.startswith("data:video/") or not head.endswith(";base64"):
                raise BadRequest("a data URL must be data:video/...;base64,...")
            try:
                raw = base64.b64decode(data, validate=True)
            except ValueError:
                raise BadRequest("the video's base64 does not decode") from None
            if len(raw) > self.max_upload_bytes:
                raise PayloadTooLarge(f"video too large: the limit is {self.max_upload_bytes / 2**20:g} MB")
            path = self.uploads.folder / f"{uuid.uuid4().hex}.video"
            path.write_bytes(raw)
            return path
        if url.startswith(("http://", "https://")):
            raise BadRequest("remote URLs are not fetched: send a data: URL, a path inside --allowed-local-media-path "
                             "or an upload id")  # fmt: skip
        if url in self.uploads.held:  # an upload id from /api/upload
            return self.uploads.take(url).path
        path = Path(url.removeprefix("file://")).expanduser()
        if not self.allowed:
            raise Forbidden("local paths are not served: start longvid serve with --allowed-local-media-path")
        resolved = path.resolve()
        if not any(resolved.is_relative_to(folder) for folder in self.allowed):
            raise Forbidden(f"{path} is outside the allowed media folder")
        if not resolved.is_file():
            raise BadRequest(f"{path}: no such file")
        return resolved

    def _frames(self, images: list) -> np.ndarray:
        from PIL import Image

        frames = []
        for k, img in enumerate(images):
            url = img.get("url") if isinstance(img, dict) else img
            if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
                raise BadRequest(f"image_url {k} must be a data:image/...;base64 URL")
            try:
                picture = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))).convert("RGB")
            except Exception:
                raise BadRequest(f"image_url {k} is not an image") from None
            if frames and picture.size != (frames[0].shape[1], frames[0].shape[0]):
                picture = picture.resize((frames[0].shape[1], frames[0].shape[0]))
            frames.append(np.asarray(picture, dtype=np.uint8))
        return np.stack(frames)

    # ------------------------------------------------------------------ answering (worker thread)

    def _answer(self, llm, call: dict) -> tuple[str, dict]:
        turns, options = call["turns"], call["options"]
        held = self.session
        if held is None or held[0] != call["key"] or held[1] != options.replace(max_new_tokens=32):
            if held is not None:  # the previous video's cache goes first, and a file it was sent as
                self.session = None
                if isinstance(held[3], Path) and held[3].parent == self.uploads.folder:
                    held[3].unlink(missing_ok=True)
            session = llm.chat(call["video"], options)
            self.session = held = (call["key"], options.replace(max_new_tokens=32), session, call["video"])
        question, history = turns[-1][0], tuple((q, a) for q, a in turns[:-1])
        answer = held[2].answer([question], [history], options.max_new_tokens)[0]
        r = answer.report
        usage = {"prompt_tokens": r.prompt_tokens, "completion_tokens": r.generated_tokens,
                 "total_tokens": r.prompt_tokens + r.generated_tokens}  # fmt: skip
        return answer.text, usage

    async def _events(self, reply_id: str, created: int, text: str, usage: dict, call: dict):
        def chunk(delta: dict, finish=None, extra=None) -> str:
            body = {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": self.model_id,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}  # fmt: skip
            return f"data: {json.dumps(body)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        words = text.split(" ")
        for k, word in enumerate(words):
            yield chunk({"content": word if k == 0 else " " + word})
        yield chunk({}, "stop", {"usage": usage} if call["usage_in_stream"] else None)
        yield "data: [DONE]\n\n"
