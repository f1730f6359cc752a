"""``deepshield serve``: a local web page and JSON API around ``deepshield predict`` (FastAPI).

Routes: ``GET /`` the page (static/index.html, app.js, style.css; no build step), ``GET /api/health``,
``POST /api/predict`` (multipart field ``file``; ``?wait=false`` answers 202 with a job to poll at
``GET /api/jobs/{id}``, which the page uses for its progress bar; ``?model=robust`` picks one of the
models health lists), ``GET /api/model-card`` (``?model=``), and FastAPI's
``/docs`` and ``/openapi.json``. Every error is JSON ``{"error": "..."}`` with a 4xx/5xx status, never
a traceback.

Safety: uploads stream into a fresh temporary folder under a name the server picks, the size limit is
enforced while they stream (413), their content is checked by decoding (415/422), one job runs at a
time with at most ``queue_limit`` waiting or running (503 beyond), each job has a time limit (504),
and the upload is deleted when its job ends. The server binds 127.0.0.1 unless told otherwise.

    >>> app = create_app(ServeConfig(checkpoint="default"))
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from deepshield import __version__
from deepshield.config import ServeConfig
from deepshield.serve.jobs import Job
from deepshield.serve.payload import MODEL_CARDS
from deepshield.serve.service import Service
from deepshield.serve.uploads import UploadError, check_media, receive_upload

STATIC = Path(__file__).resolve().parent / "static"
# The page loads only its own files and shows data: images; /docs (Swagger UI from a CDN) is left alone.
_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                            "frame-ancestors 'none'",
                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "a video or an image"}}}}}}}
_ERRORS = {code: {"description": text, "content": {"application/json": {"example": {"error": "..."}}}}
           for code, text in [(400, "no file, or not multipart"), (413, "over the upload limit"),
                              (415, "not a video or image"), (422, "damaged or unusable media"),
                              (503, "queue full; retry later"), (504, "the job ran past its time limit")]}


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def job_response(job: Job) -> JSONResponse:
    if job.state == "done":
        return JSONResponse(job.result)
    return error(job.status, job.error or "the job failed")


def create_app(cfg: ServeConfig, predictor: Any | None = None, hosts: list[str] | None = None) -> FastAPI:
    """The web app for ``cfg``; ``predictor`` (a loaded ``deepshield.predict.Predictor``) to share one;
    ``hosts``: the only Host headers answered (others get 400), which stops DNS-rebinding pages from
    reading a localhost server's answers."""
    service = Service(cfg, predictor)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        service.queue.shutdown()

    app = FastAPI(title="deepshield", version=__version__, lifespan=lifespan,
                  description="Is this video or image a deepfake? Upload it to `POST /api/predict`.")
    app.state.service = service
    _add_error_handlers(app)
    if hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)

    @app.middleware("http")
    async def page_headers(request: Request, call_next):
        response = await call_next(request)
        if not request.url.path.startswith(("/docs", "/redoc")):
            response.headers.update(_PAGE_HEADERS)
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_routes(app, service, cfg)
    return app


def _add_routes(app: FastAPI, service: Service, cfg: ServeConfig) -> None:
    """The page and the JSON API: health, model card, predict, job status."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/health", summary="server status, model, limits and queue")
    async def health() -> dict:
        return service.health()

    @app.get("/api/model-card", summary="a bundled model's card (markdown); ?model=robust for another",
             response_class=PlainTextResponse)
    async def model_card(model: str | None = None) -> PlainTextResponse:
        name = model or cfg.checkpoint
        card = MODEL_CARDS.get(name) if name in service.choices else None
        if card is None or not card.is_file():
            return error(404, f"no model card for model {name[:60]!r}")
        return PlainTextResponse(card.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8")

    @app.post("/api/predict", summary="judge an uploaded video or image", openapi_extra=_UPLOAD_SCHEMA,
              responses={202: {"description": "with wait=false: the job to poll"}, **_ERRORS})
    async def predict(request: Request, wait: bool = True, model: str | None = None) -> JSONResponse:
        """Upload a video or image (multipart field `file`): REAL/FAKE, p_fake, per-frame scores, face
        crops with Grad-CAM overlays (PNG data URLs), frames without a face, the attack alarm. `model`:
        one of /api/health's `models` (default: the first)."""
        if model is not None and model not in service.choices:
            return error(400, f"unknown model {model[:60]!r}; choose from {', '.join(service.choices)}")
        return await _predict(service, request, wait, model)

    @app.get("/api/jobs/{job_id}", summary="a job's state, progress and (when done) result")
    async def job_status(job_id: str) -> JSONResponse:
        job = service.queue.get(job_id)
        if job is None:
            return error(404, f"no job {job_id[:40]!r}: it never existed or its result expired; upload again")
        return JSONResponse(job.to_json(service.queue.position(job)))


async def _predict(service: Service, request: Request, wait: bool, model: str | None = None) -> JSONResponse:
    queue = service.queue
    if not queue.reserve():
        return error(503, f"the server is busy ({queue.limit} jobs queued or running); try again in a minute",
                     queue_limit=queue.limit)
    folder = Path(tempfile.mkdtemp(prefix="deepshield-serve-"))
    submitted = False
    try:
        filename = await receive_upload(dict(request.headers), request.stream(), folder / "upload.bin",
                                        service.cfg.max_upload_bytes)
        media = await run_in_threadpool(check_media, folder / "upload.bin")
        job = queue.submit(lambda j: service.analyse(j, media, filename, model),
                           cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))
        submitted = True
    except UploadError as err:
        return error(err.status, str(err))
    finally:
        if not submitted:
            queue.release()
            shutil.rmtree(folder, ignore_errors=True)
    if not wait:
        return JSONResponse({"job": job.id, "status_url": f"/api/jobs/{job.id}",
                             "position": queue.position(job)}, status_code=202)
    await asyncio.wrap_future(job.future)  # bounded: the job stops at its time limit
    queue.forget(job)
    return job_response(job)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return error(422, f"bad request: {where}")

    @app.exception_handler(Exception)
    async def bug(_request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error ({type(exc).__name__}); please report it with the server's log")


__all__ = ["STATIC", "create_app"]
