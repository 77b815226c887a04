"""The HTTP side of the local Hub (tests/support/hub_server.py): routes, access, and the wire
shapes huggingface_hub 2.4.0 sends and expects (docs/hub-protocol.md for downloads,
/work/shared/HUB-PROTOCOL.md for uploads). ``FakeHub`` holds the state; this module only
speaks HTTP for it."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from tests.support.hub_server import HubHTTPError, Request, git_blob_oid, lfs_pointer

if TYPE_CHECKING:
    from tests.support.hub_server import FakeHub

_REPO = r"(?P<repo>[^/]+/[^/]+)"


class HubHandler(BaseHTTPRequestHandler):
    """Routes requests to FakeHub methods. Patterns match the raw (still quoted) path,
    so a revision like ``refs%2Fpr%2F1`` stays one segment."""

    protocol_version = "HTTP/1.1"
    server_hub: FakeHub

    ROUTES: tuple[tuple[str, str, str], ...] = (
        ("GET", "agent_harnesses", r"/api/agent-harnesses"),
        ("POST", "create_repo", r"/api/repos/create"),
        ("POST", "validate_yaml", r"/api/validate-yaml"),
        ("GET", "refs", rf"/api/models/{_REPO}/refs"),
        ("GET", "tree", rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?"),
        ("POST", "preupload", rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)"),
        ("POST", "commit", rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)"),
        ("POST", "tag", rf"/api/models/{_REPO}/tag/(?P<rev>[^/]+)"),
        ("GET", "repo_info", rf"/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?"),
        ("POST", "lfs_batch", rf"/{_REPO}\.git/info/lfs/objects/batch"),
        ("PUT", "lfs_upload", r"/lfs-objects/(?P<oid>[0-9a-f]{64})"),
        ("POST", "lfs_verify", r"/lfs-objects/(?P<oid>[0-9a-f]{64})/verify"),
        ("HEAD", "resolve", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
        ("GET", "resolve", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
        ("GET", "cdn", r"/cdn/(?P<oid>[0-9a-f]{64})"),
    )
    UNAUTHENTICATED = frozenset({"agent_harnesses", "lfs_upload", "lfs_verify", "cdn"})
    READS = frozenset({"repo_info", "refs", "tree", "resolve"})
    """Routes a public repo answers without a token."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``FakeHub.requests``."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        hub = self.server_hub
        url = urlsplit(self.path)
        body = self._read_body()
        record = Request(method, url.path, "unknown", self.headers.get("authorization"))
        record.range = self.headers.get("range")
        with hub._lock:
            hub.requests.append(record)
        for route_method, route, pattern in self.ROUTES:
            match = re.fullmatch(pattern, url.path)
            if route_method == method and match:
                record.route = route
                break
        else:
            record.status = 404
            self._send_error(HubHTTPError(404, f"no route for {method} {url.path}"))
            return
        params = {key: unquote(value) for key, value in match.groupdict().items() if value}
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        try:
            if route not in self.UNAUTHENTICATED:
                self._check_access(route, params.get("repo"))
            if (status := hub._take_failure(route)) is not None:
                raise HubHTTPError(status, f"injected failure on {route}")
            status, headers, payload = self._handle(route, params, query, body)
        except HubHTTPError as exc:
            record.status = exc.status
            self._send_error(exc)
            return
        record.status = status
        cut = None
        if route == "cdn" and method == "GET":
            with hub._lock:
                cut, hub._cut_after = hub._cut_after, None
        self._send(status, payload, headers, cut=cut)

    def _check_access(self, route: str, repo_id: str | None) -> None:
        """As the Hub: a wrong token is refused; no token reads public repos only, and a
        private repo is then indistinguishable from a missing one."""
        hub = self.server_hub
        given = self.headers.get("authorization")
        if given == f"Bearer {hub.token}":
            return
        if given is not None or route not in self.READS or repo_id is None:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        path = hub._repo_path(repo_id)
        if not path.is_file() or hub.repo(repo_id).private:
            raise HubHTTPError(401, "Repository not found", "RepoNotFound")

    def _handle(
        self, route: str, params: dict[str, str], query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        hub = self.server_hub
        repo_id = params.get("repo", "")
        revision = params.get("rev", "main")
        if route == "agent_harnesses":
            return _json({"standardEnvVars": [], "harnesses": {}})
        if route == "create_repo":
            return _json(hub.create_repo(json.loads(body)))
        if route == "validate_yaml":
            return _validate_yaml(json.loads(body)["content"])
        if route == "refs":
            return _json(hub.refs(repo_id, query.get("include_prs") == "1"))
        if route == "tree":
            return _json(hub.tree(repo_id, revision, params.get("path", "")))
        if route == "repo_info":
            return _json(hub.repo_info(repo_id, revision))
        if route == "preupload":
            return _json(hub.preupload(repo_id, json.loads(body)))
        if route == "commit":
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            return _json(hub.commit(repo_id, revision, query.get("create_pr") == "1", lines))
        if route == "tag":
            return _json(hub.tag(repo_id, revision, json.loads(body)))
        if route == "lfs_batch":
            status, headers, payload = _json(hub.lfs_batch(repo_id, json.loads(body)))
            return status, {**headers, "Content-Type": "application/vnd.git-lfs+json"}, payload
        if route == "lfs_upload":
            return _json(hub.lfs_upload(params["oid"], body))
        if route == "lfs_verify":
            return _json(hub.lfs_verify(json.loads(body)))
        if route == "cdn":
            return self._ranged(hub.blob(params["oid"]).read_bytes(), {})
        return self._resolve(repo_id, revision, params["path"])

    def _resolve(self, repo_id: str, revision: str, path: str) -> tuple[int, dict, bytes]:
        """A regular file comes back at once; an LFS file as the Hub sends it, a 302 to
        its CDN URL whose X-Linked-* headers carry the content's sha256 and size."""
        hub = self.server_hub
        if hub.repo(repo_id).gated:
            message = (
                f"Access to model {repo_id} is restricted and you are not in the authorized list."
            )
            raise HubHTTPError(403, message, "GatedRepo")
        oid, entry = hub.resolve_file(repo_id, revision, path)
        if entry.lfs:
            pointer = lfs_pointer(entry.sha256, entry.size)
            headers = {
                "X-Repo-Commit": oid,
                "ETag": f'"{git_blob_oid(pointer)}"',
                "X-Linked-Etag": f'"{entry.sha256}"',
                "X-Linked-Size": str(entry.size),
                "Location": f"{hub.cdn_url}/cdn/{entry.sha256}",
            }
            return 302, headers, b""
        data = hub.blob(entry.sha256).read_bytes()
        return self._ranged(data, {"X-Repo-Commit": oid, "ETag": f'"{git_blob_oid(data)}"'})

    def _ranged(self, data: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        """``Range: bytes=N-`` (or ``N-M``), which a resumed download sends: 206 and
        the rest of the file."""
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("range") or "")
        if not match or self.command == "HEAD":
            return 200, headers, data
        start, end = int(match[1]), int(match[2] or len(data) - 1)
        if start >= len(data):
            raise HubHTTPError(416, f"range {start}- is past the end ({len(data)} bytes)")
        content_range = f"bytes {start}-{end}/{len(data)}"
        return 206, {**headers, "Content-Range": content_range}, data[start : end + 1]

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, payload: bytes, headers: dict[str, str], cut: int | None = None
    ) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload if cut is None else payload[:cut])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True

    def _send_error(self, exc: HubHTTPError) -> None:
        headers = {"X-Error-Message": exc.message}
        if exc.code:
            headers["X-Error-Code"] = exc.code
        self._send(exc.status, json.dumps({"error": exc.message, **exc.extra}).encode(), headers)


def _json(value: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, json.dumps(value).encode()


def _validate_yaml(content: str) -> tuple[int, dict[str, str], bytes]:
    """The Hub's card metadata check, reduced to what a fake can know: the front matter
    must be a YAML mapping."""
    match = re.match(r"\A---\n(.*?)\n---\n", content, flags=re.DOTALL)
    try:
        metadata = yaml.safe_load(match[1]) if match else {}
    except yaml.YAMLError as exc:
        return _errors(f"metadata is not valid YAML: {exc}")
    if not isinstance(metadata, dict):
        return _errors("metadata must be a YAML mapping")
    return _json({})


def _errors(message: str) -> tuple[int, dict[str, str], bytes]:
    return 400, {}, json.dumps({"errors": [{"message": message}]}).encode()
