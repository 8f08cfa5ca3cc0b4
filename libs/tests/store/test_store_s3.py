"""What only the S3 store has: its URL, presigning for the public endpoint, bucket handling.
Runs on the real S3 server of the root ``s3_server`` / ``s3_url`` fixtures."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from minio import Minio

from photosplat_libs.store import create_store
from photosplat_libs.store.s3 import S3Store


def test_from_url() -> None:
    store = S3Store.from_url("s3://AK:s%2Fcret@minio:9000/photos?secure=false&region=eu-west-1")
    assert (store.bucket, store.region) == ("photos", "eu-west-1")
    assert isinstance(create_store("s3://a:b@h:9000/b"), S3Store)
    for bad in ["s3://h:9000/b", "s3://a:b@h:9000/", "s3://a:b@h:9000/b/c", "http://a:b@h/b"]:
        with pytest.raises(ValueError):
            S3Store.from_url(bad)
    with pytest.raises(ValueError, match="public url"):
        S3Store.from_url("s3://a:b@h:9000/b", public_url="http://h:9000/prefix")


async def test_secure_follows_the_scheme_unless_given() -> None:
    async def presigned(url: str) -> str:
        return await S3Store.from_url(url).presigned_put("k", timedelta(minutes=1))

    assert (await presigned("s3://a:b@h:9000/bkt")).startswith("http://h:9000/bkt/k?")
    assert (await presigned("s3s://a:b@h:9000/bkt")).startswith("https://h:9000/bkt/k?")
    assert (await presigned("s3s://a:b@h:9000/bkt?secure=false")).startswith("http://h:9000/bkt/k?")


async def test_presigning_makes_no_network_call() -> None:
    """The region is set, so signing never asks the server (here: a name that does not resolve)."""
    store = S3Store.from_url("s3://a:b@minio.invalid:9000/bkt", public_url="https://files.invalid")
    url = await store.presigned_put("jobs/a/incoming/0001.jpg", timedelta(minutes=10))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://files.invalid/bkt/jobs/a/incoming/0001.jpg"
    assert parse_qs(parts.query)["X-Amz-Expires"] == ["600"]


async def test_presigned_url_is_for_the_public_endpoint(s3_url: str, s3_server: str) -> None:
    """The service reaches the server as 127.0.0.1, clients as localhost: the URL names localhost."""
    public = s3_server.replace("127.0.0.1", "localhost")
    store = create_store(s3_url, public_url=public)
    url = await store.presigned_put("jobs/a/incoming/0001.jpg", timedelta(minutes=5))
    assert url.startswith(f"{public}/")
    async with httpx.AsyncClient() as client:
        response = await client.put(url, content=b"from outside")
    assert response.status_code == 200
    assert await store.get("jobs/a/incoming/0001.jpg") == b"from outside"


async def test_bucket_lifecycle(s3_server: str) -> None:
    host = urlsplit(s3_server).netloc
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    store = S3Store.from_url(f"s3://test:testsecret@{host}/{bucket}?secure=false")
    admin = Minio(host, "test", "testsecret", secure=False, region="us-east-1")
    await store.ensure_ready()
    await store.ensure_ready()  # idempotent
    assert admin.bucket_exists(bucket)
    for i in range(30):
        await store.put(f"jobs/a/{i:03d}", b"x")
    assert await store.delete_prefix("") == 30
    await store.remove_bucket()
    assert not admin.bucket_exists(bucket)


async def test_presigned_put_signs_size_and_type_as_aws_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto checks no signature: the URL is checked against botocore's own SigV4 query signer."""
    from datetime import datetime, timezone

    auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    store = S3Store.from_url("s3://AK:s%2Fcret@minio:9000/photos?region=eu-west-1", public_url="https://files.test")
    url = await store.presigned_put(
        "jobs/a/incoming/0001.jpg", timedelta(minutes=10), content_type="image/jpeg", content_length=1234
    )
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    request = AWSRequest(
        method="PUT", url=url.split("?")[0], headers={"Content-Type": "image/jpeg", "Content-Length": "1234"}
    )
    monkeypatch.setattr(auth, "get_current_datetime", lambda: signed_at)  # the instant ours was signed at
    auth.S3SigV4QueryAuth(Credentials("AK", "s/cret"), "s3", "eu-west-1", expires=600).add_auth(request)
    assert parse_qs(urlsplit(request.url).query)["X-Amz-Signature"] == query["X-Amz-Signature"]
