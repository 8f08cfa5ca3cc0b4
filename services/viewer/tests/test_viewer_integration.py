"""The viewer on the deployment's adapters: a job row in real Postgres, its export in an S3 bucket."""

import os

from photosplat_libs.db.models import JobStatus

DATA = os.urandom(300_000)


async def test_range_streams_from_s3_for_a_job_in_postgres(open_viewer, pg_url: str, s3_url: str) -> None:
    async with open_viewer(pg_url, s3_url) as viewer:
        pub_key = await viewer.add_job(
            JobStatus.DONE, files={"splat": ("scene.splat", DATA)}, file_sizes={"splat": len(DATA)}
        )

        page = await viewer.client.get(f"/v/{pub_key}")
        assert page.status_code == 200
        assert f"/recon/pub/{pub_key}/scene.splat" in page.text

        url = f"/recon/pub/{pub_key}/scene.splat"
        part = await viewer.client.get(url, headers={"Range": "bytes=100000-199999"})
        assert part.status_code == 206
        assert part.content == DATA[100_000:200_000]
        assert part.headers["content-range"] == f"bytes 100000-199999/{len(DATA)}"

        tail = await viewer.client.get(url, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == DATA[-10:]

        whole = await viewer.client.get(url)
        assert whole.status_code == 200 and whole.content == DATA
        assert (await viewer.client.get(url, headers={"If-None-Match": whole.headers["etag"]})).status_code == 304
