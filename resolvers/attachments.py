"""Attachments: files uploaded over HTTP into GridFS, referenced by comments and workspace items.

`POST /attachments` (multipart field `file`) stores the bytes in the GridFS bucket `uploads`
(tenant and uploader in its metadata) and an `attachments` document of the tenant that the
rest of the hub works with. A file is downloadable (`GET /attachments/{id}`) by its uploader
and by anyone of the same tenant who may read a comment or workspace item that references it;
everyone else gets 404. Domains declare how to read their references with `register_reference`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING, DESCENDING, IndexModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from hub import auth
from hub.errors import HubError, invalid
from hub.store import Doc, new_id, register_indexes
from resolvers.context import Context

register_indexes(
    "attachments",
    IndexModel([("tenant", ASCENDING), ("uploaderId", ASCENDING), ("createdAt", DESCENDING)]),
)

BUCKET = "uploads"
CHUNK = 255 * 1024
MAX_PER_OBJECT = 20
MAX_FILENAME = 255
# Multipart framing around the file: the body limit of `/attachments` is the upload limit plus this.
MULTIPART_SLACK = 64 * 1024

RefReader = Callable[[Context, str], Awaitable[bool]]
REF_READERS: dict[str, RefReader] = {}


def register_reference(kind: str, can_read: RefReader) -> None:
    """Declare how to check that the caller may read a referencing object (`comment`, `workspace`…)."""
    REF_READERS[kind] = can_read


def url(attachment_id: str) -> str:
    return f"/attachments/{attachment_id}"


def public(doc: Doc) -> dict[str, Any]:
    """The JSON the upload endpoint answers with."""
    return {"id": doc["_id"], "filename": doc["filename"], "contentType": doc["contentType"],
            "size": doc["size"], "url": url(doc["_id"])}


async def check(ctx: Context, ids: Sequence[str] | None, field: str = "attachmentIds") -> list[str]:
    """Validate ids to attach: attachments of the caller's tenant (customers: only their own uploads)."""
    wanted = list(dict.fromkeys(ids or []))
    if len(wanted) > MAX_PER_OBJECT:
        raise invalid(f"At most {MAX_PER_OBJECT} attachments", field)
    if not wanted:
        return []
    me = ctx.me
    docs = await ctx.loader("attachments").load_many(wanted)
    bad = [i for i, d in zip(wanted, docs, strict=True)
           if d is None or not (me.is_staff or d["uploaderId"] == me.sub)]
    if bad:
        raise invalid(f"Unknown attachments: {', '.join(bad)}", field)
    return wanted


async def link(ctx: Context, ids: Sequence[str], kind: str, ref_id: str) -> None:
    """Record that `kind:ref_id` references these attachments (inside the mutation's write)."""
    if ids:
        await ctx.db["attachments"].update_many(
            {"_id": {"$in": list(ids)}}, {"$addToSet": {"refs": f"{kind}:{ref_id}"}}
        )


async def unlink(ctx: Context, ids: Sequence[str], kind: str, ref_id: str) -> None:
    """Forget that `kind:ref_id` references these attachments (they stop being readable through it)."""
    if ids:
        await ctx.db["attachments"].update_many(
            {"_id": {"$in": list(ids)}}, {"$pull": {"refs": f"{kind}:{ref_id}"}}
        )


async def load_many(ctx: Context, ids: Sequence[str]) -> list[Doc]:
    """Attachments of an object the caller may read, in the object's order."""
    docs = await ctx.loader("attachments").load_many(list(ids))
    return [d for d in docs if d is not None]


async def get(ctx: Context, attachment_id: str) -> Doc | None:
    """The attachment if the caller uploaded it or may read an object referencing it."""
    doc = await ctx.loader("attachments").load(attachment_id)
    if doc is None:
        return None
    if doc["uploaderId"] == ctx.me.sub:
        return doc
    for ref in doc.get("refs", []):
        kind, _, ref_id = ref.partition(":")
        reader = REF_READERS.get(kind)
        if reader is not None and await reader(ctx, ref_id):
            return doc
    return None


def clean_filename(raw: str | None) -> str:
    """A display-safe base name: no path, no control characters, at most 255 characters."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    return name[:MAX_FILENAME] or "upload"


async def store(ctx: Context, upload: UploadFile, content_type: str, size: int) -> Doc:
    """Copy an upload into GridFS and record it as an attachment of the caller's tenant."""
    me = ctx.me
    bucket = AsyncGridFSBucket(ctx.hub.store.db, bucket_name=BUCKET)
    attachment_id = new_id("att")
    filename = clean_filename(upload.filename)
    grid_in = bucket.open_upload_stream_with_id(
        attachment_id, filename, chunk_size_bytes=CHUNK,
        metadata={"tenant": me.tenant, "uploaderId": me.sub, "contentType": content_type},
    )
    try:
        await upload.seek(0)
        while chunk := await upload.read(CHUNK):
            await grid_in.write(chunk)
        await grid_in.close()
    except BaseException:
        await grid_in.abort()
        raise
    doc: Doc = {
        "_id": attachment_id, "filename": filename, "contentType": content_type, "size": size,
        "uploaderId": me.sub, "createdAt": datetime.now(UTC), "refs": [],
    }
    try:
        await ctx.db["attachments"].insert(doc)
    except BaseException:
        await bucket.delete(attachment_id)
        raise
    return doc


# --- HTTP endpoints (mounted by hub.app) ---------------------------------------------------


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]},
                        status_code=status, headers=headers or None)


def _context(request: Request) -> Context | Response:
    hub = request.app.state.hub_ref["hub"]
    token = auth.bearer(request.headers.get("authorization"))
    if token is None:
        return _error(401, "UNAUTHENTICATED", "Authentication required", **{"WWW-Authenticate": "Bearer"})
    try:
        identity = auth.verify(token, hub.settings.jwt_secret, hub.settings.jwt_issuer)
    except HubError as exc:
        return _error(401, "UNAUTHENTICATED", exc.message, **{"WWW-Authenticate": "Bearer"})
    client = request.client.host if request.client else ""
    return Context(hub=hub, identity=identity, request=request, client_ip=client)


def _size(upload: UploadFile) -> int:
    if upload.size is not None:
        return upload.size
    upload.file.seek(0, 2)
    return upload.file.tell()


async def upload_endpoint(request: Request) -> Response:
    """`POST /attachments`: multipart field `file` → 201 `{id, filename, contentType, size, url}`."""
    ctx = _context(request)
    if isinstance(ctx, Response):
        return ctx
    settings = ctx.hub.settings
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_bytes + MULTIPART_SLACK:
        return _error(413, "PAYLOAD_TOO_LARGE", f"Files are limited to {settings.max_upload_bytes} bytes")
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return _error(400, "INVALID", "Send the file as multipart/form-data field `file`")
    try:
        form = await request.form(max_files=1, max_fields=5)
    except (HTTPException, MultiPartException) as exc:
        return _error(400, "INVALID", f"Malformed upload: {getattr(exc, 'detail', exc)}")
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _error(400, "INVALID", "Send the file as multipart/form-data field `file`")
        size = _size(upload)
        if size > settings.max_upload_bytes:
            return _error(413, "PAYLOAD_TOO_LARGE", f"Files are limited to {settings.max_upload_bytes} bytes")
        if size == 0:
            return _error(400, "INVALID", "The file is empty")
        content_type = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
        if content_type not in settings.upload_types:
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", f"Files of type {content_type} are not accepted")
        doc = await store(ctx, upload, content_type, size)
    finally:
        await form.close()
    return JSONResponse(public(doc), status_code=201)


async def download_endpoint(request: Request) -> Response:
    """`GET /attachments/{id}`: the bytes, to those who may read it; 404 for everyone else."""
    ctx = _context(request)
    if isinstance(ctx, Response):
        return ctx
    doc = await get(ctx, request.path_params["id"])
    if doc is None:
        return _error(404, "NOT_FOUND", "Attachment not found")
    bucket = AsyncGridFSBucket(ctx.hub.store.db, bucket_name=BUCKET)
    try:
        grid_out = await bucket.open_download_stream(doc["_id"])
    except NoFile:
        return _error(404, "NOT_FOUND", "Attachment not found")

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in grid_out:
                yield chunk
        finally:
            await grid_out.close()

    disposition = f"attachment; filename*=UTF-8''{quote(doc['filename'], safe='')}"
    return StreamingResponse(body(), media_type=doc["contentType"], headers={
        "Content-Length": str(doc["size"]), "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store",
    })
