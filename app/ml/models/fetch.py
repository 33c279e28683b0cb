"""`ovozly models fetch`: download the Hub models the settings need, on purpose, verified.

For each Hugging Face model in the catalogue the Hub's file listing (`model_info` with file
metadata) gives every file's size and published digest (LFS SHA-256, or the git blob SHA-1
of a small file) at one commit. Each wanted file is streamed to `<file>.part` beside its
destination while it is hashed; an interrupted download resumes from the `.part` with an
HTTP Range request (in this run's retries or the next run); a file whose digest differs
from the published one is deleted and never moved into place. The manifest written last
(`.ovozly-model.json`) records the commit and digests, for `ovozly models verify`.

`HF_ENDPOINT` points this at a mirror (tests use a loopback server); `HF_HUB_OFFLINE=1`
forbids it, with a message saying so.
"""

from __future__ import annotations

import fcntl
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from app.core.errors import OvozlyError
from app.ml.models.catalog import (
    ExpectedFile,
    ModelSource,
    ModelSpec,
    file_digest,
    human_size,
    matches_any,
    write_manifest,
)

logger = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 4
RETRY_DELAY_S = 1.0
_CHUNK = 1024 * 1024
CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 60.0


class ModelFetchError(OvozlyError):
    """A model could not be fetched; the message says why and what to do."""


class Progress(Protocol):
    """Told about each file as it downloads."""

    def start(self, name: str, total_bytes: int | None, done_bytes: int) -> None: ...

    def advance(self, done_bytes: int) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FetchedFile:
    path: str
    size_bytes: int
    downloaded_bytes: int
    """0 when the file was already present and intact."""
    resumed_from: int


@dataclass(frozen=True, slots=True)
class FetchResult:
    spec: ModelSpec
    commit: str | None
    files: list[FetchedFile]

    @property
    def downloaded_bytes(self) -> int:
        return sum(file.downloaded_bytes for file in self.files)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def fetch_model(spec: ModelSpec, *, token: str | None, progress: Progress) -> FetchResult:
    """Download `spec`'s files into its location (Hub models only), verified."""
    if spec.source is not ModelSource.HUGGING_FACE:
        raise ModelFetchError(f"{spec.name} comes from a {spec.source.value} source, not the Hub")
    assert spec.repo_id is not None and spec.location is not None
    if hub_offline():
        raise ModelFetchError(
            "HF_HUB_OFFLINE=1 forbids downloads, and `ovozly models fetch` is the one command "
            "that downloads: run it with HF_HUB_OFFLINE unset (workers keep it set)"
        )
    commit, wanted = _published_files(spec, token)
    spec.location.mkdir(parents=True, exist_ok=True)
    fetched: list[FetchedFile] = []
    with _exclusive(spec.location):
        for item in wanted:
            fetched.append(_fetch_file(spec, commit or spec.revision, item, token, progress))
        write_manifest(
            spec.location,
            repo_id=spec.repo_id,
            revision=spec.revision,
            commit=commit,
            files=wanted,
        )
    return FetchResult(spec, commit, fetched)


def _published_files(spec: ModelSpec, token: str | None) -> tuple[str | None, list[ExpectedFile]]:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    assert spec.repo_id is not None
    endpoint = hub_endpoint()
    try:
        info = HfApi(endpoint=endpoint, token=token).model_info(
            spec.repo_id, revision=spec.revision, files_metadata=True
        )
    except GatedRepoError as exc:
        raise ModelFetchError(
            f"{spec.repo_id} is gated: accept its conditions at {endpoint}/{spec.repo_id} with "
            f"your account and set HF_TOKEN to a token of that account"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelFetchError(
            f"{spec.repo_id} was not found at {endpoint} (a typo in the setting, or a private "
            "repo that needs HF_TOKEN)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelFetchError(f"{spec.repo_id} has no revision {spec.revision!r}") from exc
    except _transport_errors() as exc:
        raise _unreachable(endpoint, spec, exc) from exc
    except HfHubHTTPError as exc:
        raise ModelFetchError(f"the Hub refused the listing of {spec.repo_id}: {exc}") from exc
    wanted = [
        ExpectedFile(
            sibling.rfilename,
            sibling.lfs.size if sibling.lfs else sibling.size,
            "sha256" if sibling.lfs else ("git-sha1" if sibling.blob_id else None),
            sibling.lfs.sha256 if sibling.lfs else sibling.blob_id,
        )
        for sibling in info.siblings or []
        if matches_any(sibling.rfilename, spec.allow_patterns or ("*",))
    ]
    if not wanted:
        raise ModelFetchError(
            f"{spec.repo_id} at {info.sha or spec.revision} has no file matching "
            f"{list(spec.allow_patterns)}; is it the right kind of model for this setting?"
        )
    if any(item.digest is None for item in wanted):
        raise ModelFetchError(
            f"{endpoint} published no digests for {spec.repo_id}; refusing unverifiable files"
        )
    return info.sha, wanted


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection failures as huggingface_hub raises them (it moved from httpx to httpx2)."""
    errors: list[type[BaseException]] = [httpx.TransportError, OSError]
    try:
        import httpx2

        errors.append(httpx2.TransportError)
    except ImportError:  # pragma: no cover - older huggingface_hub
        pass
    return tuple(errors)


def _unreachable(endpoint: str, spec: ModelSpec, exc: BaseException) -> ModelFetchError:
    return ModelFetchError(
        f"cannot reach {endpoint} to fetch {spec.repo_id} ({type(exc).__name__}: {exc}). "
        "`ovozly models fetch` needs network access to the Hugging Face Hub (or a mirror in "
        "HF_ENDPOINT). On a machine without it, fetch on one that has it and copy MODELS_DIR",
        retryable=True,
    )


@contextmanager
def _exclusive(location: Path) -> Iterator[None]:
    """One fetcher per model directory at a time (two `models` runs must not interleave)."""
    with (location / ".fetch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fetch_file(
    spec: ModelSpec, commit: str, item: ExpectedFile, token: str | None, progress: Progress
) -> FetchedFile:
    assert spec.location is not None and item.algorithm is not None and item.digest is not None
    target = spec.location / item.path
    if (
        target.is_file()
        and (item.size_bytes is None or target.stat().st_size == item.size_bytes)
        and file_digest(target, item.algorithm) == item.digest
    ):
        return FetchedFile(item.path, target.stat().st_size, 0, 0)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    url = _file_url(spec, commit, item.path)
    first_offset = part.stat().st_size if part.is_file() else 0
    downloaded = 0
    last_error: BaseException | None = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            downloaded += _download(url, part, item, token, progress)
            break
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            last_error = exc
            status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
            if status is not None and status < 500 and status != 416:
                raise ModelFetchError(
                    f"{url} answered {status}; check HF_TOKEN and the repo"
                ) from exc
            logger.warning(
                "download of %s interrupted (%s); resuming (attempt %d of %d)",
                item.path,
                exc,
                attempt,
                DOWNLOAD_ATTEMPTS,
            )
            time.sleep(RETRY_DELAY_S * attempt)
    else:
        assert last_error is not None
        raise ModelFetchError(
            f"downloading {item.path} of {spec.name} failed {DOWNLOAD_ATTEMPTS} times "
            f"({last_error}); rerun `ovozly models fetch`: it resumes from {part.name}",
            retryable=True,
        ) from last_error
    actual = file_digest(part, item.algorithm)
    if actual != item.digest:
        part.unlink()
        raise ModelFetchError(
            f"{item.path} of {spec.name} does not match its published {item.algorithm} "
            f"({actual} != {item.digest}); the partial file was deleted, rerun to fetch it again"
        )
    part.replace(target)
    return FetchedFile(item.path, target.stat().st_size, downloaded, first_offset)


def _file_url(spec: ModelSpec, commit: str, filename: str) -> str:
    from huggingface_hub import hf_hub_url

    assert spec.repo_id is not None
    return str(hf_hub_url(spec.repo_id, filename, revision=commit, endpoint=hub_endpoint()))


def _download(
    url: str, part: Path, item: ExpectedFile, token: str | None, progress: Progress
) -> int:
    """Appends the rest of the file to `part` (a Range request when some is there);
    returns the bytes received."""
    from huggingface_hub.utils._headers import build_hf_headers

    offset = part.stat().st_size if part.is_file() else 0
    if item.size_bytes is not None and offset > item.size_bytes:
        part.unlink()
        offset = 0
    headers: dict[str, str] = dict(build_hf_headers(token=token))
    if offset:
        headers["Range"] = f"bytes={offset}-"
    if item.size_bytes is not None and offset == item.size_bytes:
        return 0
    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    received = 0
    # The Hub redirects LFS files to a CDN; httpx drops the Authorization header when a
    # redirect leaves the Hub's origin.
    with (
        httpx.Client(follow_redirects=True, timeout=timeout) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        if response.status_code == 416 and offset:
            part.unlink()  # the server disagrees about the partial file: start over
            response.raise_for_status()
        response.raise_for_status()
        mode = "ab"
        if offset and response.status_code != 206:
            offset, mode = 0, "wb"  # the server ignored the Range: take the whole body
        progress.start(item.path, item.size_bytes, offset)
        try:
            with part.open(mode) as handle:
                for chunk in response.iter_bytes(_CHUNK):
                    handle.write(chunk)
                    received += len(chunk)
                    progress.advance(offset + received)
        finally:
            progress.finish()
    return received


# --- progress ----------------------------------------------------------------------------------


class TerminalProgress:
    """A tqdm bar on a terminal; a line per 10 % elsewhere (container logs)."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream or sys.stderr
        self._bar: Any = None
        self._name = ""
        self._total: int | None = None
        self._next_report = 0.0

    def start(self, name: str, total_bytes: int | None, done_bytes: int) -> None:
        self._name, self._total = name, total_bytes
        resumed = f", resuming at {human_size(done_bytes)}" if done_bytes else ""
        if self._stream.isatty():
            from tqdm import tqdm  # type: ignore[import-untyped]

            self._bar = tqdm(
                total=total_bytes,
                initial=done_bytes,
                unit="B",
                unit_scale=True,
                desc=name,
                file=self._stream,
                leave=True,
            )
        else:
            print(f"    {name}: {human_size(total_bytes)}{resumed}", file=self._stream, flush=True)
            self._next_report = 0.1

    def advance(self, done_bytes: int) -> None:
        if self._bar is not None:
            self._bar.update(done_bytes - self._bar.n)
            return
        if self._total:
            fraction = done_bytes / self._total
            if fraction >= self._next_report and fraction < 1.0:
                print(f"    {self._name}: {fraction:.0%}", file=self._stream, flush=True)
                self._next_report = (int(fraction * 10) + 1) / 10

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class SilentProgress:
    def start(self, name: str, total_bytes: int | None, done_bytes: int) -> None:
        pass

    def advance(self, done_bytes: int) -> None:
        pass

    def finish(self) -> None:
        pass


__all__ = [
    "FetchResult",
    "FetchedFile",
    "ModelFetchError",
    "Progress",
    "SilentProgress",
    "TerminalProgress",
    "fetch_model",
]
