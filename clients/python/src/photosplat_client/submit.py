"""Submit a folder of photos (or one video): declare them, upload each to its presigned URL in parallel, start the
job. Resumable: the state file (:mod:`.state`) records the job and every photo the store has, so a
run after an interruption continues the same job and uploads only what is missing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from photosplat_client import state as st
from photosplat_client.api import ApiError, FileProblem, PhotoSplatClient, PhotoToDeclare
from photosplat_client.models import Submission
from photosplat_client.progress import UploadProgress

# Attempts per photo; transient failures only (a dropped connection, a 5xx of the store).
UPLOAD_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 1.0

# What a declaration's Idempotency-Key stands for besides the photos (the token scopes the key).
_REQUEST = {"preset", "original_resolution", "callback_url", "token"}


class SubmitError(Exception):
    """A submission that cannot go on; the message says what to do."""


class SubmitRejected(SubmitError):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.problems: list[FileProblem] = error.problems


class _Cancelled(Exception):
    """Another upload failed or the user interrupted: stop sending this one."""


@dataclass
class SubmitOptions:
    preset: str = "standard"
    original_resolution: bool = False
    parallel: int = 4
    # POSTed the job's end, signed (SubmitResult.webhook_secret verifies it); an API key's default otherwise.
    callback_url: str | None = None
    # Forget an earlier, unfinished submission of the folder and declare the photos as a new job.
    restart: bool = False


@dataclass
class SubmitResult:
    job_id: uuid.UUID
    token: str
    pub_key: str | None
    state_path: Path
    # None when an earlier run had already submitted the job
    submission: Submission | None
    uploaded: list[str] = field(default_factory=list)
    # the secret of the job's webhook signatures, when it has a callback URL
    webhook_secret: str | None = None


def submit_photos(
    client: PhotoSplatClient,
    photos_dir: Path,
    *,
    state_dir: Path | None = None,
    options: SubmitOptions | None = None,
    progress: UploadProgress | None = None,
    on_uploaded: Callable[[str], None] | None = None,
    notify: Callable[[str], None] = lambda message: None,
) -> SubmitResult:
    """Upload the photos of ``photos_dir`` (or the video it names) as one job and submit it.
    ``on_uploaded`` is called with each file's name once the store has it and the state file says so."""
    options = options or SubmitOptions()
    folder, photos = st.scan_inputs(photos_dir)
    if not photos:
        raise SubmitError(f"no photos ({', '.join(st.PHOTO_TYPES)}) in {photos_dir}")
    path = st.state_path(photos_dir, state_dir)
    state = _resumable_state(client, path, photos, options, notify)
    if state.submitted:
        notify(f"the photos were already submitted as job {state.job_id}")
        return SubmitResult(_job_id(state), state.token or "", state.pub_key, path, None, webhook_secret=state.webhook_secret)
    if state.job_id is None:
        _declare(client, state, path, photos)
    client.token = state.token
    uploads = _Uploads(client, state, path, folder, progress or UploadProgress(), on_uploaded)
    uploaded = uploads.run(options.parallel)
    submission = _submit(client, state, path)
    return SubmitResult(
        _job_id(state), state.token or "", state.pub_key, path, submission, uploaded, webhook_secret=state.webhook_secret
    )


def _job_id(state: st.SubmissionState) -> uuid.UUID:
    assert state.job_id is not None
    return state.job_id


def _resumable_state(
    client: PhotoSplatClient,
    path: Path,
    photos: list[st.Photo],
    options: SubmitOptions,
    notify: Callable[[str], None],
) -> st.SubmissionState:
    """The earlier submission of this folder to continue, else a new one (saved before anything is
    declared, so that a crash during the declaration is retried with the same Idempotency-Key)."""
    earlier = None if options.restart else st.load(path)
    if earlier is not None and earlier.server != client.server:
        raise SubmitError(
            f"{path} belongs to a submission to {earlier.server}: use --restart to send the photos to "
            f"{client.server} as a new job, or --state to keep both"
        )
    token = client.token
    if earlier is not None and earlier.job_id is not None and not earlier.submitted:
        if not earlier.reconcile(photos):
            raise SubmitError(
                f"the photos changed (names or sizes) since job {earlier.job_id} was declared for them: "
                "use --restart to submit them as a new job"
            )
        if not (earlier.missing() and earlier.urls_expired()):
            return earlier
        # No route renews the URLs of a declared job: the photos are declared again.
        notify(f"the upload URLs of job {earlier.job_id} have expired: declaring the photos again as a new job")
        token, earlier = token or earlier.token, None
    if earlier is not None and (earlier.job_id is not None or earlier.submitted):
        return earlier
    fresh = st.SubmissionState(
        server=client.server,
        preset=options.preset,
        original_resolution=options.original_resolution,
        callback_url=options.callback_url,
        token=token,
    )
    if earlier is not None and earlier.model_dump(include=_REQUEST) == fresh.model_dump(include=_REQUEST):
        # A declaration that may have reached the server before the run stopped: the same key gets
        # its job back instead of a second one.
        fresh.declare_key = earlier.declare_key
    st.save(fresh, path)
    return fresh


def _declare(client: PhotoSplatClient, state: st.SubmissionState, path: Path, photos: list[st.Photo]) -> None:
    client.token = state.token
    declaration = client.declare_uploads(
        [PhotoToDeclare(p.name, p.size, p.content_type) for p in photos],
        preset=state.preset,
        original_resolution=state.original_resolution,
        idempotency_key=state.declare_key,
        callback_url=state.callback_url,
    )
    state.declared(declaration, photos)
    st.save(state, path)


def _submit(client: PhotoSplatClient, state: st.SubmissionState, path: Path) -> Submission | None:
    try:
        submission: Submission | None = client.submit(_job_id(state), idempotency_key=state.submit_key)
    except ApiError as exc:
        if exc.status_code == 409:
            # Submitted by an earlier run that stopped before it could note it.
            submission = None
        elif exc.status_code == 410:
            raise SubmitError(f"{exc.message}; run again with --restart") from exc
        elif exc.status_code == 400:
            _forget_rejected(state, exc.problems)
            st.save(state, path)
            raise SubmitRejected(exc) from exc
        else:
            raise
    state.submitted = True
    st.save(state, path)
    return submission


def _forget_rejected(state: st.SubmissionState, problems: list[FileProblem]) -> None:
    """The server deletes every upload it rejects: those photos are to be uploaded again (once fixed)."""
    rejected = {p.file for p in problems if p.file is not None}
    for record in state.files:
        if record.slot.name in rejected or record.photo.name in rejected:
            record.uploaded = False


class _Uploads:
    """The missing photos of a declared job, ``parallel`` at a time; the state file is saved after
    each one, so an interruption loses at most the photos in flight."""

    def __init__(
        self,
        client: PhotoSplatClient,
        state: st.SubmissionState,
        path: Path,
        photos_dir: Path,
        progress: UploadProgress,
        on_uploaded: Callable[[str], None] | None,
    ) -> None:
        self.client, self.state, self.path, self.photos_dir = client, state, path, photos_dir
        self.progress, self.on_uploaded = progress, on_uploaded
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.uploaded: list[str] = []

    def run(self, parallel: int) -> list[str]:
        missing = self.state.missing()
        done = [f for f in self.state.files if f.uploaded]
        total_bytes = sum(f.photo.size for f in self.state.files)
        self.progress.begin(
            len(self.state.files), total_bytes, done_files=len(done), done_bytes=sum(f.photo.size for f in done)
        )
        pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="photosplat-upload")
        futures: list[Future[None]] = [pool.submit(self._one, record) for record in missing]
        try:
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            errors = [e for f in finished if (e := f.exception()) is not None]
            # The first failure stops the rest, which then raise _Cancelled: report the failure.
            error = next((e for e in errors if not isinstance(e, _Cancelled)), errors[0] if errors else None)
            if error is not None:
                raise error
        finally:
            # A failure or Ctrl-C: photos not started stay missing, those in flight stop sending.
            self.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            self.progress.close()
        return self.uploaded

    def _one(self, record: st.FileRecord) -> None:
        if self.stop.is_set():
            raise _Cancelled()
        name = record.photo.name
        self.progress.started(name, record.photo.size)
        try:
            sent = self._send(record)
            if sent != record.photo.sha256:
                raise SubmitError(f"{name} changed while it was uploaded: run again to upload it anew")
        except _Cancelled:
            self.progress.failed(name, "stopped")
            raise
        except Exception as exc:
            # Stop the other workers at once, not when the main thread wakes: a free worker would
            # otherwise start the next photo first.
            self.stop.set()
            self.progress.failed(name, str(exc) or type(exc).__name__)
            raise
        with self.lock:
            record.uploaded = True
            st.save(self.state, self.path)
            self.uploaded.append(name)
        self.progress.finished(name)
        if self.on_uploaded is not None:
            try:
                self.on_uploaded(name)
            except BaseException:
                self.stop.set()
                raise

    def _send(self, record: st.FileRecord) -> str:
        """The SHA-256 of what the store received, after at most UPLOAD_ATTEMPTS tries."""
        name = record.photo.name
        for attempt in range(1, UPLOAD_ATTEMPTS):
            try:
                return self.client.put_file(record.slot, self.photos_dir / name, on_bytes=lambda n: self._sent(name, n))
            except (httpx.TransportError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status_code < 500:
                    raise  # a refusal (an expired URL, a size the URL was not signed for): no retry helps
                self.progress.retrying(name, str(exc) or type(exc).__name__)
                if self.stop.wait(RETRY_PAUSE_SECONDS * attempt):
                    raise _Cancelled() from exc
        return self.client.put_file(record.slot, self.photos_dir / name, on_bytes=lambda n: self._sent(name, n))

    def _sent(self, name: str, n: int) -> None:
        if self.stop.is_set():
            raise _Cancelled()
        self.progress.sent(name, n)
