"""A small Hub-compatible HTTP server on 127.0.0.1, for pushing with the real HfApi.

It speaks the part of the Hub's protocol that ``HfApi`` uses to create a repo, commit
files (preupload, the git-LFS batch API, upload PUTs and verify, the ndjson commit),
list refs and trees, tag commits and download files back as ``snapshot_download`` does
(revision info, the file tree, ``/resolve`` with ETag and X-Repo-Commit, an LFS file as
a redirect to a CDN URL with X-Linked-Etag and X-Linked-Size, byte ranges for resumed
downloads). The shapes are the ones huggingface_hub 2.4.0 sends and expects
(/work/shared/HUB-PROTOCOL.md; what the client sends is in docs/hub-protocol.md). Xet is
not spoken: clients must run with ``HF_HUB_DISABLE_XET=1`` so large files go over LFS.

Reads are answered as the Hub answers them: a public repo without a token; a private or
missing one with 401 RepoNotFound without a token and 404 with one; a gated repo
(``FakeHub.gate``) with 403 GatedRepo on its files.

This module keeps the state; ``tests.support.hub_http`` speaks HTTP for it (routes, access,
headers). How it keeps things, on disk below ``root``:

- ``blobs/<sha256>``: the content of every file ever uploaded, LFS or not. Blobs that
  were PUT survive a commit that failed, as on the Hub, so a retried push skips them.
- ``repos/<owner>/<name>.json``: commits (parent, message, and the full file table:
  path -> sha256, size, lfs), branches, tags and pull-request refs. A commit is
  atomic: it either moves its ref with every file, or changes nothing.

Failure injection (``FakeHub.fail``) makes a named route answer an HTTP error, so tests
can break a push midway. Use statuses the client does not retry (400, 403, 412...) to
stay fast: 5xx on preupload, LFS batch, PUT and verify is retried for 23 s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".onnx")
LFS_MIN_SIZE = 10 * 2**20
GITATTRIBUTES = b"".join(
    b"*%s filter=lfs diff=lfs merge=lfs -text\n" % suffix.encode() for suffix in LFS_SUFFIXES
)


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


@dataclass
class Failure:
    route: str
    status: int
    times: int | None
    after: int
    seen: int = 0


@dataclass
class Request:
    method: str
    path: str
    route: str
    authorization: str | None = None
    status: int = 0
    range: str | None = None


class HubHTTPError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


@dataclass
class RemoteFile:
    sha256: str
    size: int
    lfs: bool


@dataclass
class Repo:
    private: bool
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pull_requests: dict[int, str] = field(default_factory=dict)
    gated: bool = False

    def resolve(self, revision: str) -> str:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if match and int(match[1]) in self.pull_requests:
            return self.pull_requests[int(match[1])]
        if revision in self.commits:
            return revision
        raise HubHTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def files(self, revision: str) -> dict[str, RemoteFile]:
        table = self.commits[self.resolve(revision)]["files"]
        return {path: RemoteFile(**entry) for path, entry in table.items()}


class FakeHub:
    """The server: ``with FakeHub(root, token) as hub: HfApi(endpoint=hub.url)``."""

    def __init__(self, root: Path, token: str) -> None:
        self.root = Path(root)
        self.token = token
        self.requests: list[Request] = []
        self._failures: list[Failure] = []
        self._cut_after: int | None = None
        self._lock = threading.RLock()
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        hub = self

        from tests.support.hub_http import HubHandler

        class Handler(HubHandler):
            server_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.cdn_url = f"http://localhost:{self._server.server_address[1]}"
        """LFS downloads redirect here: another host name for the same server, so the
        client treats it as the Hub's CDN (no token sent, metadata from the redirect)."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- failure injection and introspection, for tests --------------------------------

    def fail(self, route: str, status: int, *, times: int | None = 1, after: int = 0) -> None:
        """Answer ``status`` to the next ``times`` requests on ``route`` (None: all of
        them), after letting ``after`` through. Routes: see
        ``tests.support.hub_http.HubHandler.ROUTES``."""
        with self._lock:
            self._failures.append(Failure(route, status, times, after))

    def calls(self, route: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.route == route]

    def repo(self, repo_id: str) -> Repo:
        with self._lock:
            return self._load(repo_id)

    def read(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        entry = self.repo(repo_id).files(revision)[path]
        return self.blob(entry.sha256).read_bytes()

    def blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def cut_download(self, after: int) -> None:
        """The next CDN download stops after ``after`` bytes and the connection closes,
        as a dropped network does; the client resumes it with a Range request."""
        with self._lock:
            self._cut_after = after

    def gate(self, repo_id: str) -> None:
        """Make ``repo_id`` gated, with terms the token's account has not accepted."""
        with self._lock:
            repo = self._load(repo_id)
            repo.gated = True
            self._save(repo_id, repo)

    def move_branch(self, repo_id: str, branch: str, commit: str) -> None:
        """Point ``branch`` at ``commit``, as a force-push by the repo's owner does."""
        with self._lock:
            repo = self._load(repo_id)
            repo.resolve(commit)
            repo.branches[branch] = commit
            self._save(repo_id, repo)

    def merge_pull_request(self, repo_id: str, number: int) -> None:
        """What a maintainer's "merge" does to a pull request opened on the head of main."""
        with self._lock:
            repo = self._load(repo_id)
            commit = repo.pull_requests[number]
            if repo.commits[commit]["parent"] != repo.branches["main"]:
                raise AssertionError("the fake Hub only merges pull requests fast-forward")
            repo.branches["main"] = commit
            self._save(repo_id, repo)

    # -- state ------------------------------------------------------------------------

    def _repo_path(self, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_id}.json"

    def _load(self, repo_id: str) -> Repo:
        path = self._repo_path(repo_id)
        if not path.is_file():
            raise HubHTTPError(404, f"Repository {repo_id} not found", "RepoNotFound")
        data = json.loads(path.read_text())
        data["pull_requests"] = {int(k): v for k, v in data["pull_requests"].items()}
        return Repo(**data)

    def _save(self, repo_id: str, repo: Repo) -> None:
        path = self._repo_path(repo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(repo.__dict__, indent=1))
        os.replace(tmp, path)

    def _store(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.blob(sha256)
        if not target.exists():
            tmp = target.with_name(f".{sha256}.{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return sha256

    def _commit(
        self, repo: Repo, parent: str | None, files: dict[str, dict], summary: str, description: str
    ) -> str:
        payload = json.dumps([parent, files, summary, description, len(repo.commits)])
        oid = hashlib.sha1(payload.encode()).hexdigest()
        repo.commits[oid] = {
            "parent": parent,
            "summary": summary,
            "description": description,
            "files": files,
        }
        return oid

    def _take_failure(self, route: str) -> int | None:
        with self._lock:
            for failure in self._failures:
                if failure.route != route:
                    continue
                failure.seen += 1
                if failure.seen <= failure.after:
                    return None
                if failure.times is not None:
                    if failure.times == 0:
                        continue
                    failure.times -= 1
                return failure.status
        return None

    # -- routes -----------------------------------------------------------------------

    def create_repo(self, body: dict) -> dict:
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else None
        if repo_id is None:
            raise HubHTTPError(400, "the fake Hub needs an owner in the repo id")
        with self._lock:
            if self._repo_path(repo_id).exists():
                url = f"{self.url}/{repo_id}"
                raise HubHTTPError(409, "You already created this model repo", url=url)
            repo = Repo(private=body.get("visibility") == "private")
            files = {".gitattributes": self._entry(GITATTRIBUTES, lfs=False)}
            repo.branches["main"] = self._commit(repo, None, files, "initial commit", "")
            self._save(repo_id, repo)
        return {"url": f"{self.url}/{repo_id}"}

    def _entry(self, data: bytes, *, lfs: bool) -> dict:
        return {"sha256": self._store(data), "size": len(data), "lfs": lfs}

    def repo_info(self, repo_id: str, revision: str) -> dict:
        repo = self.repo(repo_id)
        sha = repo.resolve(revision)
        siblings = [{"rfilename": path} for path in sorted(repo.files(sha))]
        return {"id": repo_id, "sha": sha, "private": repo.private, "siblings": siblings}

    def refs(self, repo_id: str, include_prs: bool) -> dict:
        repo = self.repo(repo_id)

        def ref(name: str, full: str, oid: str) -> dict:
            return {"name": name, "ref": full, "targetCommit": oid}

        answer = {
            "branches": [ref(n, f"refs/heads/{n}", o) for n, o in repo.branches.items()],
            "converts": [],
            "tags": [ref(n, f"refs/tags/{n}", o) for n, o in repo.tags.items()],
        }
        if include_prs:
            answer["pullRequests"] = [
                ref(f"refs/pr/{n}", f"refs/pr/{n}", o) for n, o in repo.pull_requests.items()
            ]
        return answer

    def tree(self, repo_id: str, revision: str, prefix: str) -> list[dict]:
        entries = []
        for path, entry in sorted(self.repo(repo_id).files(revision).items()):
            if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                continue
            item: dict[str, Any] = {"type": "file", "path": path, "size": entry.size}
            if entry.lfs:
                pointer = lfs_pointer(entry.sha256, entry.size)
                item["oid"] = git_blob_oid(pointer)
                item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(pointer)}
            else:
                item["oid"] = git_blob_oid(self.blob(entry.sha256).read_bytes())
            entries.append(item)
        return entries

    def preupload(self, repo_id: str, body: dict) -> dict:
        self.repo(repo_id)
        files = []
        for item in body["files"]:
            lfs = item["path"].endswith(LFS_SUFFIXES) or item["size"] >= LFS_MIN_SIZE
            mode = "lfs" if lfs else "regular"
            files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False})
        return {"files": files}

    def lfs_batch(self, repo_id: str, body: dict) -> dict:
        self.repo(repo_id)
        objects = []
        for obj in body["objects"]:
            oid, size = obj["oid"], obj["size"]
            answer: dict[str, Any] = {"oid": oid, "size": size}
            blob = self.blob(oid)
            if not (blob.is_file() and blob.stat().st_size == size):
                answer["actions"] = {
                    "upload": {"href": f"{self.url}/lfs-objects/{oid}"},
                    "verify": {"href": f"{self.url}/lfs-objects/{oid}/verify"},
                }
            objects.append(answer)
        return {"objects": objects}

    def lfs_upload(self, oid: str, data: bytes) -> dict:
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubHTTPError(400, f"content does not match oid {oid}")
        self._store(data)
        return {}

    def lfs_verify(self, body: dict) -> dict:
        blob = self.blob(body["oid"])
        if not (blob.is_file() and blob.stat().st_size == body["size"]):
            raise HubHTTPError(404, f"object {body['oid']} not uploaded")
        return {}

    def commit(self, repo_id: str, revision: str, create_pr: bool, lines: list[dict]) -> dict:
        with self._lock:
            repo = self._load(repo_id)
            if revision not in repo.branches:
                raise HubHTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.branches[revision]
            header = lines[0]["value"]
            parent = header.get("parentCommit")
            if parent is not None and parent != head:
                raise HubHTTPError(
                    412, "A commit has happened since. Please refresh and try again."
                )
            files = dict(repo.commits[head]["files"])
            for line in lines[1:]:
                self._apply(files, line["key"], line["value"])
            oid = self._commit(repo, head, files, header["summary"], header.get("description", ""))
            answer = {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid}
            if create_pr:
                number = max(repo.pull_requests, default=0) + 1
                repo.pull_requests[number] = oid
                answer["pullRequestUrl"] = f"{self.url}/{repo_id}/discussions/{number}"
            else:
                repo.branches[revision] = oid
            self._save(repo_id, repo)
        return answer

    def _apply(self, files: dict[str, dict], key: str, value: dict) -> None:
        path = value["path"]
        if key == "file":
            files[path] = self._entry(base64.b64decode(value["content"]), lfs=False)
        elif key == "lfsFile":
            blob = self.blob(value["oid"])
            if not (blob.is_file() and blob.stat().st_size == value["size"]):
                raise HubHTTPError(422, f"LFS object {value['oid']} of {path} was never uploaded")
            files[path] = {"sha256": value["oid"], "size": value["size"], "lfs": True}
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubHTTPError(404, f"cannot delete {path}: no such file", "EntryNotFound")
        elif key == "deletedFolder":
            for name in [name for name in files if name.startswith(path.rstrip("/") + "/")]:
                del files[name]
        else:
            raise HubHTTPError(400, f"unknown commit operation {key!r}")

    def tag(self, repo_id: str, revision: str, body: dict) -> dict:
        with self._lock:
            repo = self._load(repo_id)
            oid = repo.resolve(revision)
            if body["tag"] in repo.tags:
                raise HubHTTPError(409, f"Tag {body['tag']} already exists")
            repo.tags[body["tag"]] = oid
            self._save(repo_id, repo)
        return {}

    def resolve_file(self, repo_id: str, revision: str, path: str) -> tuple[str, RemoteFile]:
        repo = self.repo(repo_id)
        oid = repo.resolve(revision)
        entry = repo.files(oid).get(path)
        if entry is None:
            raise HubHTTPError(404, f"{path} not found at {revision}", "EntryNotFound")
        return oid, entry
