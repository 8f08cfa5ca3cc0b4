"""The HTTP end of the folder store's presigned uploads.

A client PUTs the body to the URL from :meth:`FolderStore.presigned_put`, exactly as it would to
an S3 presigned URL: the embedded mode offers the same direct-upload flow as the distributed one.
The body is streamed to disk (never held in memory) and stored atomically.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from photosplat_libs.api_errors import error_responses
from photosplat_libs.store.folder import FolderStore, ObjectTooLarge
from photosplat_libs.store.folder_files import DEFAULT_TYPE
from photosplat_libs.store.folder_presign import UPLOAD_PATH, UploadDenied, UploadTerms


# The body is read as a stream, so no parameter describes it: the file itself, of the Content-Type
# the URL was signed for.
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes, exactly the declared size, with the declared Content-Type.",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}
UPLOAD_REFUSALS = error_responses(
    {
        400: "the key is not one this store accepts",
        403: "the URL's signature is wrong or expired, or the request is not what it signed (type, size)",
        413: "the body is larger than the limit",
    }
)


def folder_upload_router(store: FolderStore, *, max_bytes: int) -> APIRouter:
    router = APIRouter()
    too_large = f"upload is larger than the limit of {max_bytes} bytes"

    @router.put(
        UPLOAD_PATH + "{key:path}",
        operation_id="upload_to_store",
        responses=UPLOAD_REFUSALS,
        openapi_extra=UPLOAD_BODY,
        summary="Upload one declared file to its presigned URL",
    )
    async def upload(
        key: str,
        request: Request,
        expires: str | None = None,
        signature: str | None = None,
        length: str | None = None,
        signed_type: str | None = Query(None, alias="type"),
    ) -> Response:
        content_type = request.headers.get("content-type") or DEFAULT_TYPE
        try:
            terms = store.verify_upload(key, expires, signature, length=length, content_type=signed_type)
            _check_terms(terms, content_type, request.headers.get("content-length", ""))
        except UploadDenied as e:
            raise HTTPException(status_code=403, detail=str(e)) from e
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise HTTPException(status_code=413, detail=too_large)
        try:
            info = await store.put_stream(
                key, request.stream(), content_type, max_bytes=max_bytes, size=terms.content_length
            )
        except ObjectTooLarge as e:
            raise HTTPException(status_code=413, detail=str(e)) from e
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        return Response(status_code=200, headers={"ETag": f'"{info.etag}"'})

    return router


def _check_terms(terms: UploadTerms, content_type: str, declared_length: str) -> None:
    """A request that breaks what its URL signed is refused as a signed S3 URL refuses it."""
    if terms.content_type is not None and content_type != terms.content_type:
        raise UploadDenied(f"this upload URL is for Content-Type {terms.content_type!r}, not {content_type!r}")
    if terms.content_length is not None and declared_length and declared_length != str(terms.content_length):
        raise UploadDenied(f"this upload URL is for exactly {terms.content_length} bytes, not {declared_length}")
