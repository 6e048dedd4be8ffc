"""The review web app (Starlette) over one store: IIIF Image API 3, the page, its metadata, saving edits.

    GET  /                                                the review page (static/index.html)
    GET  /iiif/{image}/info.json                          IIIF Image API 3 description
    GET  /iiif/{image}/{region}/{size}/{rotation}/{q}.{f} IIIF image request (400 with the reason if bad)
    GET  /api/meta                                        catalog entry, weights, parameters, runs, versions
    GET  /provenance/{file}                               a provenance document of the store
    POST /api/save     {target, base_version, strokes}    mask_edited/ or scribbles/ (409 on a conflict)
    POST /api/inpaint  {}                                 re-run inpainting on mask_edited/ (flows/review.py)
    POST /api/adapt    {}                                 adapt on scribbles/, then detect (flows/review.py)
    POST /api/undo     {}                                 drop the adapted weights, then detect (flows/review.py)
    GET  /api/jobs/{id}                                   a re-run's progress

Blocking work (Zarr reads, encoding, saving) runs in Starlette's thread pool, so tiles keep coming while a
save or a re-run is in progress.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pipeline.errors import InputError
from pipeline.io.store import local_path
from pipeline.review.edits import EditConflict, EditError, parse_strokes, save_strokes
from pipeline.review.iiif import FORMATS, IIIFError, info_json, parse_request
from pipeline.review.images import ReviewImages, render
from pipeline.review.meta import store_meta

STATIC_DIR = Path(__file__).resolve().parent / "static"
_DOCUMENT = re.compile(r"^[A-Za-z0-9_.-]+\.json$")


def _bad(reason: str, status: int = 400) -> PlainTextResponse:
    return PlainTextResponse(reason + "\n", status_code=status)


def _cross_site(request: Request) -> PlainTextResponse | None:
    """Refuse a write that a web page of another site could send without a CORS preflight (a form or a
    text/plain fetch): writes must be JSON, which browsers only send cross-site after a preflight we deny."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _bad("writes must be sent as application/json", 415)
    return None


def create_app(store: str, catalog: Path | None = None, jobs: Any = None) -> Starlette:
    """The app for `store` (refused at once when it has no complete scan). `jobs` runs the re-runs (inpaint,
    adapt, undo: flows.review.ReviewJobs)."""
    images = ReviewImages(store)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    async def info(request: Request) -> Response:
        name = request.path_params["image"]
        source = images.get(name)
        if source is None:
            return _bad(f"no image '{name}' in this store (have: {', '.join(images.names())})", 404)
        base = str(request.url_for("image_base", image=name))
        body = info_json(base, source.width, source.height, list(source.scales), bool(source.overlay_classes))
        return JSONResponse(body, media_type="application/ld+json",
                            headers={"Access-Control-Allow-Origin": "*"})

    async def image_base(request: Request) -> Response:
        return RedirectResponse(str(request.url).rstrip("/") + "/info.json", status_code=303)

    async def image(request: Request) -> Response:
        p = request.path_params
        source = images.get(p["image"])
        if source is None:
            return _bad(f"no image '{p['image']}' in this store (have: {', '.join(images.names())})", 404)
        try:
            req = parse_request(p["region"], p["size"], p["rotation"], p["quality_format"],
                                source.width, source.height)
            body = await run_in_threadpool(render, source, req)
        except IIIFError as exc:
            return _bad(str(exc))
        except Exception as exc:  # a chunk of the store that cannot be decoded: codec errors come in many types
            return _bad(f"{store}: '{p['image']}' cannot be read in this region ({type(exc).__name__}: {exc}); "
                        f"`retouch verify {store}` names the damaged chunks", 500)
        return Response(body, media_type=FORMATS[req.format],
                        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})

    async def meta(request: Request) -> Response:
        await run_in_threadpool(images.reload)  # a page loaded after a stage ran (adapt, detect) shows its output
        return JSONResponse(await run_in_threadpool(store_meta, store, catalog, images.names()))

    async def document(request: Request) -> Response:
        name = request.path_params["name"]
        path = Path(local_path(store)) / "provenance" / name
        if not _DOCUMENT.match(name) or not path.is_file():
            return _bad(f"no provenance document '{name}'", 404)
        return FileResponse(path, media_type="application/json")

    async def save(request: Request) -> Response:
        if (refused := _cross_site(request)) is not None:
            return refused
        try:
            body = await request.json()
            target, base_version = body["target"], str(body["base_version"])
            strokes = parse_strokes(body["strokes"], target)
        except (ValueError, KeyError, TypeError) as exc:  # EditError is a ValueError
            return _bad(f"bad save request: {exc}")
        try:
            marker = await run_in_threadpool(save_strokes, store, target, strokes, base_version)
        except EditConflict as exc:
            return _bad(str(exc), 409)
        except (EditError, InputError) as exc:  # a store that is busy, remote or incomplete
            return _bad(str(exc))
        images.reload()
        return JSONResponse({"target": target, "version": marker["digests"]["0"],
                             "pixels_changed": marker["pixels_changed"], "time": marker["time"]})

    def rerun(stage: str) -> Any:
        """The handler starting the re-run of `stage` (inpaint, adapt or undo)."""

        async def start(request: Request) -> Response:
            if (refused := _cross_site(request)) is not None:
                return refused
            if jobs is None:
                return _bad(f"re-running {stage} is not enabled in this server", 404)
            state = await run_in_threadpool(getattr(jobs, f"start_{stage}"))
            if state["status"] == "refused":
                return _bad(f"not started: {state['error']}", 409)
            return JSONResponse(state, status_code=202)

        return start

    async def job(request: Request) -> Response:
        state = jobs.state(request.path_params["job_id"]) if jobs is not None else None
        if state is None:
            return _bad("no such job", 404)
        if state.get("status") == "done":
            images.reload()
        return JSONResponse(state)

    routes = [
        Route("/", page),
        Route("/iiif/{image}/info.json", info),
        Route("/iiif/{image}", image_base, name="image_base"),
        Route("/iiif/{image}/{region}/{size}/{rotation}/{quality_format}", image),
        Route("/api/meta", meta),
        Route("/provenance/{name}", document),
        Route("/api/save", save, methods=["POST"]),
        Route("/api/inpaint", rerun("inpaint"), methods=["POST"]),
        Route("/api/adapt", rerun("adapt"), methods=["POST"]),
        Route("/api/undo", rerun("undo"), methods=["POST"]),
        Route("/api/jobs/{job_id}", job),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.images = images
    return app
