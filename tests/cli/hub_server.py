"""A real loopback HTTP server speaking the slice of the Hugging Face Hub protocol that
`ovozly models fetch` uses: the model listing with file metadata
(`/api/models/<repo>/revision/<rev>?blobs=true`) and file downloads
(`/<repo>/resolve/<rev>/<file>`) with HTTP Range, gated repos, and a way to cut a download
off part-way. Point `HF_ENDPOINT` at `FakeHub.url`."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_MIN_BYTES = 1_000_000
"""Files at least this big are served as LFS files (published SHA-256), like the Hub's."""


@dataclass
class HubRepo:
    files: dict[str, Path]
    commit: str
    gated_token: str | None = None


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class FakeHub:
    repos: dict[str, HubRepo] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    cut_after: dict[str, int] = field(default_factory=dict)
    """filename -> bytes sent before the next download of it is cut off (once)."""
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def add_repo(
        self, repo_id: str, files: dict[str, Path], gated_token: str | None = None
    ) -> None:
        commit = hashlib.sha1(repo_id.encode(), usedforsecurity=False).hexdigest()
        self.repos[repo_id] = HubRepo(files, commit, gated_token)

    def downloads_of(self, filename: str) -> list[Request]:
        return [
            r for r in self.requests if "/resolve/" in r.path and r.path.endswith("/" + filename)
        ]

    def start(self) -> None:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append(
                    Request(
                        "GET", path, self.headers.get("Range"), self.headers.get("Authorization")
                    )
                )
                if path.startswith("/api/models/"):
                    self._listing(path.removeprefix("/api/models/"))
                elif "/resolve/" in path:
                    self._download(path.lstrip("/"))
                else:
                    self._error(404, "EntryNotFound")

            def _repo(self, repo_id: str) -> HubRepo | None:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    self._error(404, "RepoNotFound")
                    return None
                if repo.gated_token and self.headers.get("Authorization") != (
                    f"Bearer {repo.gated_token}"
                ):
                    self._error(403, "GatedRepo")
                    return None
                return repo

            def _listing(self, rest: str) -> None:
                repo_id, _, _revision = rest.partition("/revision/")
                repo = self._repo(repo_id)
                if repo is None:
                    return
                siblings = []
                for name, source in repo.files.items():
                    data = source.read_bytes()
                    sibling: dict[str, object] = {"rfilename": name, "size": len(data)}
                    if len(data) >= LFS_MIN_BYTES:
                        sibling["blobId"] = hashlib.sha1(
                            name.encode(), usedforsecurity=False
                        ).hexdigest()
                        sibling["lfs"] = {
                            "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "pointerSize": 134,
                        }
                    else:
                        blob = f"blob {len(data)}\0".encode() + data
                        sibling["blobId"] = hashlib.sha1(blob, usedforsecurity=False).hexdigest()
                    siblings.append(sibling)
                body = json.dumps({"id": repo_id, "sha": repo.commit, "siblings": siblings})
                self._send(200, body.encode(), {"Content-Type": "application/json"})

            def _download(self, rest: str) -> None:
                repo_id, _, tail = rest.partition("/resolve/")
                _revision, _, filename = tail.partition("/")
                repo = self._repo(repo_id)
                if repo is None:
                    return
                if filename not in repo.files:
                    self._error(404, "EntryNotFound")
                    return
                data = repo.files[filename].read_bytes()
                start, status = 0, 200
                requested = self.headers.get("Range")
                if requested:
                    start = int(requested.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                        return
                    status = 206
                body = data[start:]
                headers = {"Content-Type": "application/octet-stream", "ETag": f'"{repo.commit}"'}
                if status == 206:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                cut = hub.cut_after.pop(filename, None)
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if cut is not None:
                    # Part of the body, then the connection drops (a network fault).
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _error(self, status: int, code: str) -> None:
                body = json.dumps({"error": code}).encode()
                self._send(status, body, {"X-Error-Code": code, "Content-Type": "application/json"})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
