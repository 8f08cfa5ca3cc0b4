"""AWS Signature V4 for a presigned PUT that binds headers besides the host.

The minio SDK presigns the host only, so whoever holds its URL may PUT any number of bytes of any
type until it expires. S3 and MinIO check every header named in ``X-Amz-SignedHeaders``: signing
``Content-Length`` and ``Content-Type`` too makes the URL good for exactly the declared bytes of the
declared type. (A presigned POST policy can bound a size range instead, but needs a form upload;
the PUT flow stays the same for S3 and the folder store.)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def presign_put(
    *,
    base_url: str,
    bucket: str,
    key: str,
    region: str,
    access_key: str,
    secret_key: str,
    expires_seconds: int,
    headers: Mapping[str, str],
    now: datetime,
) -> str:
    """A path-style URL (``base_url/bucket/key``) on which a PUT must carry ``headers`` exactly."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"  # a client's Host header names a port only when it is not the default
    path = f"/{quote(bucket, safe='')}/{quote(key, safe='/')}"
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    signed = {"host": host, **{name.lower(): " ".join(value.split()) for name, value in headers.items()}}
    names = ";".join(sorted(signed))
    query = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_seconds),
        "X-Amz-SignedHeaders": names,
    }
    canonical_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items()))
    canonical_headers = "".join(f"{name}:{signed[name]}\n" for name in sorted(signed))
    request = "\n".join(("PUT", path, canonical_query, canonical_headers, names, "UNSIGNED-PAYLOAD"))
    to_sign = "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()))
    signing_key = ("AWS4" + secret_key).encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{parts.scheme}://{host}{path}?{canonical_query}&X-Amz-Signature={signature}"
