"""The gateways of the distributed deployment (compose's deploy/nginx/nginx.conf and Kubernetes'
deploy/k8s/base/gateway-nginx.conf), for tests: their routing tables read from the files, and a real
nginx running one of them against stand-in backends that answer with their own name."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# What each public path must reach: (method, path, service). Both gateways must route all of these.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/recon/jobs", "ingest"),
    ("GET", "/recon/jobs", "status"),
    ("GET", "/recon/jobs?limit=5", "status"),
    ("POST", "/recon/uploads", "ingest"),
    ("POST", "/recon/jobs/0b7c/submit", "ingest"),
    ("PUT", "/store/upload/jobs/0b7c/incoming/0001.jpg?expires=1&signature=x", "ingest"),
    ("GET", "/recon/jobs/0b7c", "status"),
    ("POST", "/recon/jobs/0b7c/cancel", "status"),
    ("DELETE", "/recon/jobs/0b7c", "status"),
    ("GET", "/admin", "status"),
    ("GET", "/admin/jobs", "status"),
    ("GET", "/v/some-public-key", "viewer"),
    ("GET", "/recon/pub/some-public-key/scene.splat", "viewer"),
    ("GET", "/", "viewer"),
    ("GET", "/docs", "viewer"),
    ("GET", "/openapi.json", "viewer"),
)
SERVICES = ("ingest", "status", "viewer")


@dataclass(frozen=True)
class Location:
    """One ``location`` block: where it sends requests (a service, or per method through a map)
    and the proxy directives that shape the traffic."""

    backends: tuple[tuple[str, str], ...]  # (method or "default", service)
    directives: tuple[tuple[str, str], ...] = field(default=())


_SHAPING = ("proxy_request_buffering", "proxy_buffering", "proxy_read_timeout", "return")


def routing_table(conf: str) -> dict[str, Location]:
    """``location`` (with its modifier, e.g. ``= /recon/jobs``) -> :class:`Location`, with every backend
    named by its service whether the file reaches it through ``set $x host:port``, a ``map`` or an
    ``upstream``."""
    conf = re.sub(r"#.*", "", conf)
    maps = {
        var: dict(re.findall(r"^\s*(\S+)\s+(\S+?);", body, flags=re.MULTILINE))
        for var, body in re.findall(r"map \$request_method \$(\w+) \{([^}]*)\}", conf)
    }
    table: dict[str, Location] = {}
    for where, body in re.findall(r"location\s+([^{]+?)\s*\{([^}]*)\}", conf):
        variables = dict(re.findall(r"set \$(\w+) (\S+);", body))
        target = re.search(r"proxy_pass http://\$?(\S+?);", body)
        backends: tuple[tuple[str, str], ...] = ()
        if target:
            name = target.group(1)
            if name in maps:
                backends = tuple(sorted((m, _service(s)) for m, s in maps[name].items()))
            else:
                backends = (("default", _service(variables.get(name, name))),)
        directives = tuple(sorted(re.findall(rf"^\s*({'|'.join(_SHAPING)})\s+(.+?);", body, flags=re.MULTILINE)))
        table[where] = Location(backends, directives)
    return table


def _service(address: str) -> str:
    return address.split(":")[0]


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def stand_in_backends(names: Sequence[str] = SERVICES) -> Iterator[dict[str, int]]:
    """HTTP servers on 127.0.0.1 that answer every request with ``"{name} {method} {path}"``;
    yields each name's port."""
    servers = {name: _backend(name) for name in names}
    try:
        yield {name: server.server_address[1] for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()


def _backend(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = f"{name} {self.command} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextmanager
def running_nginx(nginx: str, conf: str, port: int, workdir: Path) -> Iterator[str]:
    """Runs ``conf`` (already listening on 127.0.0.1:``port``) with its temporary files under
    ``workdir``; yields the base URL."""
    temp_paths = "".join(
        f"{kind}_temp_path {workdir}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = re.sub(r"^\s*\w+_temp_path .*$", "", conf, flags=re.MULTILINE)
    conf = re.sub(r"^\s*pid .*$", "", conf, flags=re.MULTILINE).replace("http {", "http {\n" + temp_paths, 1)
    conf = conf.replace("worker_processes auto;", "worker_processes 1;")
    (workdir / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-g", f"daemon off; pid {workdir}/nginx.pid;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.05)
    raise RuntimeError("nginx did not listen within 10 s")
