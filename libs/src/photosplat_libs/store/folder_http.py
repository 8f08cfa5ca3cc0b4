"""The HTTP end of the folder store's presigned uploads.

A client PUTs the body to the URL from :meth:`FolderStore.presigned_put`, exactly as it would to
an S3 presigned URL: the embedded mode offers the same direct-upload flow as the distributed one.
The body is streamed to disk (never held in memory) and stored atomically.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from photosplat_libs.store.folder import DEFAULT_TYPE, UPLOAD_PATH, FolderStore, ObjectTooLarge, UploadDenied


def folder_upload_router(store: FolderStore, *, max_bytes: int) -> APIRouter:
    router = APIRouter()
    too_large = f"upload is larger than the limit of {max_bytes} bytes"

    @router.put(UPLOAD_PATH + "{key:path}")
    async def upload(key: str, request: Request, expires: str | None = None, signature: str | None = None) -> Response:
        try:
            store.verify_upload(key, expires, signature)
        except UploadDenied as e:
            raise HTTPException(status_code=403, detail=str(e)) from e
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise HTTPException(status_code=413, detail=too_large)
        content_type = request.headers.get("content-type") or DEFAULT_TYPE
        try:
            info = await store.put_stream(key, request.stream(), content_type, max_bytes=max_bytes)
        except ObjectTooLarge as e:
            raise HTTPException(status_code=413, detail=too_large) from e
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        return Response(status_code=200, headers={"ETag": f'"{info.etag}"'})

    return router
