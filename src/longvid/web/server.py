"""``longvid serve``: a web page to ask a question about a video and see what the model saw.

Starlette + uvicorn with one static page (``static/index.html``) rather than Gradio: the page
needs a frame strip, tokens per frame and a progress bar, which are a few lines of HTML here,
while the things that matter for a server others can reach (a hard upload cap enforced while
the body streams in, uploads stored under random names in the server's own temporary folder
and deleted after use, one worker so that requests never fight over one model) are easier to
guarantee in code we own than through Gradio's upload and queue machinery and its ~40
dependencies.

Modules: ``routes`` (the API), ``uploads`` (the upload folder), ``jobs`` (the worker and
its queue), ``errors`` (error types → HTTP status).

API (JSON): ``GET /api/info``; ``POST /api/upload`` (the video as the raw body) -> ``{"upload":
id}``; ``POST /api/ask`` (question, frames, extend, pooling, kv_bits, and ``upload`` or
``sample``) -> ``{"job": id}``; ``GET /api/jobs/{id}`` -> status, progress (stage, done,
total), and when done the answer, the report and the frame strip (JPEG data URLs with index,
timestamp and tokens).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path


def create_app(
    model: str | None = None,
    device: str = "cpu",
    max_upload_mb: float = 512,
    sample: Path | None = None,
    llm=None,
    max_held_mb: float | None = None,
    allowed_local_media_path: list[Path] | None = None,
):
    """The Starlette app: loads the model (the bundled testbed by default) at start-up, or
    serves ``llm`` already loaded."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    from longvid.web.jobs import Worker
    from longvid.web.openai_api import OpenAIApi
    from longvid.web.routes import Api
    from longvid.web.uploads import Uploads

    if sample is None:
        from longvid.testbed.sample import default_sample

        sample = Path(default_sample())
    uploads = Uploads(int(max_upload_mb * 2**20), int(max_held_mb * 2**20) if max_held_mb else None)
    worker = Worker(model, device, llm)
    api = Api(worker, uploads, sample, max_upload_mb)
    model_id = "longvid-testbed" if model is None else str(model)
    v1 = OpenAIApi(worker, uploads, model_id, allowed_local_media_path, int(max_upload_mb * 2**20))

    @asynccontextmanager
    async def lifespan(app):
        try:  # the upload folder goes even when the model fails to load
            worker.load()
            yield
        finally:
            uploads.close()

    app = Starlette(
        routes=[
            Route("/", api.index),
            Route("/api/info", api.info),
            Route("/api/upload", api.upload, methods=["POST"]),
            Route("/api/ask", api.ask, methods=["POST"]),
            Route("/api/jobs/{job_id}", api.job_status),
            Route("/v1/models", v1.models),
            Route("/v1/chat/completions", v1.chat, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.worker = worker
    app.state.upload_dir = uploads.folder
    return app


def serve(
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "cpu",
    max_upload_mb: float = 512,
    max_held_mb: float | None = None,
    allowed_local_media_path: list[Path] | None = None,
) -> None:
    """Run the page (and the OpenAI-compatible /v1 API) with uvicorn until interrupted."""
    import uvicorn

    from longvid.models import load

    # loaded before the address is printed: a bad model or device is one line and exit 2,
    # never a server that starts and then fails
    llm = load(model, device=device)
    app = create_app(model, device=device, max_upload_mb=max_upload_mb, llm=llm, max_held_mb=max_held_mb,
                     allowed_local_media_path=allowed_local_media_path)  # fmt: skip
    print(f"longvid serve: http://{host}:{port}/  (uploads up to {max_upload_mb:g} MB)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
