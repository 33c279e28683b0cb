"""Audio probing under its own bounded budget, apart from everything else the API does.

Proving an upload is intact means decoding all of it: seconds of CPU for a long call. Done
in the API's threads it competed with password hashing and made logins time out under a few
multi-hour uploads. Here probes run in a small pool of long-lived child processes at a lower
CPU priority (nice), so:

* at most `concurrency` probes run at once per API process; more wait their turn;
* a user may have at most `per_user` uploads in flight per API process (TOO_MANY_REQUESTS);
* each probe has a time limit: a probe over it is killed with its process (a fresh process
  takes its place) and the upload is refused;
* the API's own threads, and so logins, are never busy decoding audio.

Run as a module it is the child: one JSON request per line on stdin, one answer per line on
stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.core.errors import TooManyRequests
from app.services.uploads import AudioInfo, UnreadableAudio, UploadRejected, probe_audio

logger = logging.getLogger(__name__)

PROBE_NICENESS = 10
UNREADABLE = (
    "The file is not a readable audio recording (it may be corrupt, truncated, or in an "
    "unsupported format)."
)


@dataclass(frozen=True, slots=True)
class ProbeLimits:
    concurrency: int = 2
    per_user: int = 3
    timeout_s: float = 300.0


class _ProbeProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def spawn(cls) -> _ProbeProcess:
        from app.core.processes import parent_death_signal

        parent = os.getpid()

        def prepare() -> None:
            # Dies with the API, and yields the CPU to it (logins, queries) under load.
            parent_death_signal(parent)
            os.nice(PROBE_NICENESS)

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.services.audio_probe",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=prepare,
        )
        return cls(process)

    async def probe(self, path: Path, max_duration_s: float | None) -> dict[str, object]:
        assert self.process.stdin is not None and self.process.stdout is not None
        request = {"path": str(path), "max_duration_s": max_duration_s}
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise EOFError("the probe process exited")
        answer: dict[str, object] = json.loads(line)
        return answer

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


@dataclass
class ProbePool:
    limits: ProbeLimits
    _idle: list[_ProbeProcess] = field(default_factory=list)
    _in_flight: Counter[uuid.UUID] = field(default_factory=Counter)
    _semaphore: asyncio.Semaphore | None = None
    _reaping: set[asyncio.Task[object]] = field(default_factory=set)

    @asynccontextmanager
    async def upload_slot(self, user_id: uuid.UUID) -> AsyncIterator[None]:
        """Held for the whole upload (receive, probe, store); refuses a user's upload beyond
        their limit of uploads in flight."""
        if self._in_flight[user_id] >= self.limits.per_user:
            raise TooManyRequests(
                f"You already have {self.limits.per_user} uploads in progress; "
                "wait for one to finish",
                retry_after_s=5,
            )
        self._in_flight[user_id] += 1
        try:
            yield
        finally:
            self._in_flight[user_id] -= 1
            if self._in_flight[user_id] <= 0:
                del self._in_flight[user_id]

    async def probe(self, path: Path, max_duration_s: float | None) -> AudioInfo:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limits.concurrency)
        async with self._semaphore:
            worker = self._take_idle() or await _ProbeProcess.spawn()
            try:
                async with asyncio.timeout(self.limits.timeout_s):
                    answer = await worker.probe(path, max_duration_s)
            except TimeoutError:
                self._discard(worker)
                raise UnreadableAudio(
                    f"The recording could not be checked within {self.limits.timeout_s:g} s; "
                    "it may be damaged or far too long."
                ) from None
            except BaseException:
                # Crashed (e.g. out of memory on a hostile file), or this upload was
                # cancelled mid-probe: that process's state is unknown, so it goes.
                self._discard(worker)
                raise
            self._idle.append(worker)
        return _answer_to_info(answer)

    def _take_idle(self) -> _ProbeProcess | None:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
        return None

    def _discard(self, worker: _ProbeProcess) -> None:
        worker.kill()
        task: asyncio.Task[object] = asyncio.ensure_future(worker.process.wait())
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def close(self) -> None:
        workers, self._idle = self._idle, []
        for worker in workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 5)
            except TimeoutError:
                worker.kill()
                await worker.process.wait()
        for task in list(self._reaping):
            with contextlib.suppress(Exception):
                await task


def _answer_to_info(answer: dict[str, object]) -> AudioInfo:
    rejected = answer.get("rejected")
    if isinstance(rejected, str):
        raise UploadRejected(rejected)
    info = answer.get("info")
    if not isinstance(info, dict):
        raise UnreadableAudio(UNREADABLE)
    return AudioInfo(**info)


def _serve() -> None:
    for line in sys.stdin:
        try:
            request = json.loads(line)
            info = probe_audio(Path(request["path"]), max_duration_s=request.get("max_duration_s"))
            answer: dict[str, object] = {"info": asdict(info)}
        except UploadRejected as rejected:
            answer = {"rejected": rejected.message}
        except Exception:
            logger.exception("probe failed unexpectedly")
            answer = {"rejected": UNREADABLE}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    _serve()
