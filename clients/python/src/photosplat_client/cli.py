"""``photosplat submit | status | wait | download``: a running server from the command line.

Results go to stdout, progress and notes to stderr. Exit status: 0 when it worked (``wait``: the job
is DONE), 1 when the server refused or the job failed or was cancelled, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import httpx

from photosplat_client.api import ApiError, PhotoSplatClient
from photosplat_client.models import JobStatus
from photosplat_client.progress import DownloadProgress, UploadProgress
from photosplat_client.state import VIDEO_TYPES, is_video
from photosplat_client.submit import SubmitError, SubmitOptions, SubmitRejected, submit_photos

DEFAULT_SERVER = "http://127.0.0.1:8000"
FORMATS = ("spz", "ply", "splat", "sog")
PRESETS = ("preview", "standard", "reference")


class UsageError(Exception):
    """Something missing from the command line itself (exit status 2)."""


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _client(args: argparse.Namespace) -> PhotoSplatClient:
    return PhotoSplatClient(args.server, args.token)


def _job_client(args: argparse.Namespace) -> PhotoSplatClient:
    if not args.token:
        raise UsageError("a client token is needed: --token, or PHOTOSPLAT_TOKEN (submit prints it)")
    return _client(args)


def _submit(args: argparse.Namespace) -> int:
    photos_dir = Path(args.photos_dir)
    if not (photos_dir.is_dir() or is_video(photos_dir)):
        raise UsageError(f"{photos_dir} is neither a folder of photos nor a video ({', '.join(VIDEO_TYPES)})")
    options = SubmitOptions(
        preset=args.preset,
        original_resolution=args.original_resolution,
        parallel=args.parallel,
        restart=args.restart,
        callback_url=args.callback_url,
    )
    state_dir = Path(args.state) if args.state else None
    with _client(args) as client:
        result = submit_photos(
            client, photos_dir, state_dir=state_dir, options=options, progress=UploadProgress(), notify=_note
        )
    print(f"job_id: {result.job_id}")
    print(f"token: {result.token}")
    print(f"state: {result.state_path}")
    if result.webhook_secret:
        print(f"webhook_secret: {result.webhook_secret}")
    if result.submission is not None:
        print(f"status: {result.submission.status} ({result.submission.image_count} photos)")
    _note(f"follow it: PHOTOSPLAT_TOKEN=<token> photosplat wait {result.job_id} --server {args.server}")
    return 0


def _describe(status: JobStatus) -> str:
    line = f"{status.status} {status.stage} {status.progress:.0%} (overall {status.overall_progress:.0%})"
    if status.eta_seconds is not None and not status.status.terminal:
        left = status.eta_seconds
        if status.eta_at is not None:
            left = max(0.0, left - (datetime.now(timezone.utc) - status.eta_at).total_seconds())
        line += f", about {left:.0f} s left in this stage"
    return line


def _status(args: argparse.Namespace) -> int:
    with _job_client(args) as client:
        status = client.status(args.job)
    if args.json:
        print(status.model_dump_json(indent=2))
        return 0
    print(f"job_id: {status.job_id}")
    print(f"status: {_describe(status)}")
    photos = f"{status.registered_image_count} of {status.image_count} used" if status.registered_image_count else ""
    print(f"photos: {status.image_count}" + (f" ({photos})" if photos else ""))
    facts = {
        "gaussians": status.gaussian_count,
        "psnr": f"{status.metrics.psnr:.2f} dB" if status.metrics.psnr is not None else None,
        "viewer": status.viewer_url,
        "error": f"{status.error} (stage {status.error_stage})" if status.error else None,
    }
    for name, value in facts.items():
        if value is not None:
            print(f"{name}: {value}")
    for line in status.log_tail[-5:]:
        print(f"  | {line}")
    return 0


def _wait(args: argparse.Namespace) -> int:
    seen: list[str] = []

    def show(status: JobStatus) -> None:
        # One line per change, progress in 10 % steps: a long training stays a short log.
        key = f"{status.status}/{status.stage}/{int(status.progress * 10)}"
        if not seen or seen[-1] != key:
            seen.append(key)
            _note(_describe(status))

    with _job_client(args) as client:
        try:
            final = client.wait(args.job, interval=args.interval, timeout=args.timeout, on_status=show)
        except TimeoutError as exc:
            _note(f"photosplat: {exc}")
            return 1
    print(f"{final.status}" + (f" {final.viewer_url}" if final.viewer_url else ""))
    if final.error:
        _note(f"error in stage {final.error_stage}: {final.error}")
    return 0 if final.status == "DONE" else 1


def _download(args: argparse.Namespace) -> int:
    progress = DownloadProgress(f"scene.{args.format}")
    with _job_client(args) as client:
        path = client.download(args.job, args.format, Path(args.out), on_bytes=progress)
    progress.close()
    print(path)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        default=os.environ.get("PHOTOSPLAT_SERVER", DEFAULT_SERVER),
        help=f"the server's base URL (default: PHOTOSPLAT_SERVER, else {DEFAULT_SERVER})",
    )
    p.add_argument(
        "--token", default=os.environ.get("PHOTOSPLAT_TOKEN"), help="the client token (default: PHOTOSPLAT_TOKEN)"
    )


def parser(prog: str = "photosplat") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Send photos to a PhotoSplat server and get the scene back.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="upload a folder of photos, or one video, as a new job (resumable)")
    s.add_argument("photos_dir", metavar="PHOTOS_DIR|VIDEO")
    _common(s)
    s.add_argument("--state", metavar="DIR", help="keep the state file here (default: in PHOTOS_DIR, or beside VIDEO)")
    s.add_argument("--preset", choices=PRESETS, default="standard")
    s.add_argument("--original-resolution", action="store_true", help="train on the photos at full size")
    s.add_argument("--parallel", type=int, default=4, help="uploads at once (default 4)")
    s.add_argument("--restart", action="store_true", help="forget an unfinished submission: declare a new job")
    s.add_argument("--callback-url", metavar="URL", help="POST the job's end here (signed; prints the webhook secret)")
    s.set_defaults(func=_submit)

    st = sub.add_parser("status", help="where a job stands")
    st.add_argument("job", metavar="JOB")
    _common(st)
    st.add_argument("--json", action="store_true", help="the whole status answer as JSON")
    st.set_defaults(func=_status)

    w = sub.add_parser("wait", help="follow a job (its event stream) until it is done, failed or cancelled")
    w.add_argument("job", metavar="JOB")
    _common(w)
    w.add_argument(
        "--interval", type=float, default=2.0, help="seconds between status requests (a server without event streams)"
    )
    w.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    w.set_defaults(func=_wait)

    d = sub.add_parser("download", help="download a finished scene")
    d.add_argument("job", metavar="JOB")
    _common(d)
    d.add_argument("--format", choices=FORMATS, default="spz")
    d.add_argument("--out", default=".", help="a file, or a folder for the server's file name (default: .)")
    d.set_defaults(func=_download)
    return p


def main(argv: list[str] | None = None, *, prog: str = "photosplat-client") -> int:
    args = parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    run: Callable[[argparse.Namespace], int] = args.func
    try:
        return run(args)
    except UsageError as exc:
        _note(f"{prog}: {exc}")
        return 2
    except SubmitRejected as exc:
        _note(f"{prog}: the server refused the photos: {exc}")
        for problem in exc.problems:
            _note(f"  {problem.file or '(all)'}: {problem.message} (rule: {problem.rule})")
        return 1
    except (SubmitError, ApiError) as exc:
        _note(f"{prog}: {exc}")
        return 1
    except httpx.HTTPError as exc:
        _note(f"{prog}: no answer from the server: {exc}")
        return 1
    except KeyboardInterrupt:
        _note(f"{prog}: interrupted" + ("; the same command continues the upload" if args.command == "submit" else ""))
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
