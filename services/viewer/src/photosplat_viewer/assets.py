"""The pages' own scripts and styles (``/static/app/``), the npm packages they import
(``/static/vendor/``, from ``web/node_modules``), the import map that names those packages, and the
Content-Security-Policy that lets exactly these run.

Only an allowlist of package folders is served from node_modules, and only a few file types: the
folder is an install tree, not a web root.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from fastapi.responses import FileResponse, PlainTextResponse, Response

APP_DIR = Path(__file__).parent / "static"
APP_PREFIX = "/static/app/"
VENDOR_PREFIX = "/static/vendor/"

# What the pages import: the three.js core and its addons (OrbitControls, FlyControls; Spark's own
# postprocessing import), and Spark's ES module build; Swagger UI for /docs.
VENDOR_FOLDERS = ("three/build/", "three/examples/jsm/", "@sparkjsdev/spark/dist/", "swagger-ui-dist/")
IMPORT_MAP = {
    "imports": {
        "three": f"{VENDOR_PREFIX}three/build/three.module.js",
        "three/addons/": f"{VENDOR_PREFIX}three/examples/jsm/",
        "@sparkjsdev/spark": f"{VENDOR_PREFIX}@sparkjsdev/spark/dist/spark.module.js",
    }
}
# The exact text of the inline import map: the CSP allows it by its hash, not by 'unsafe-inline'.
IMPORT_MAP_JSON = json.dumps(IMPORT_MAP, indent=1)
IMPORT_MAP_HASH = "sha256-" + base64.b64encode(hashlib.sha256(IMPORT_MAP_JSON.encode()).digest()).decode()
# The module that proves the vendor files are installed.
SPARK_ENTRY = "@sparkjsdev/spark/dist/spark.module.js"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".wasm": "application/wasm",
}


def _inside(root: Path, relative: str, folders: tuple[str, ...] = ("",)) -> Path | None:
    """``root/relative`` if it is a file of a served type in one of ``folders`` of ``root`` (checked
    after resolving, so ``..`` cannot step out of them), else None."""
    if not relative or "\\" in relative or "\x00" in relative:
        return None
    root = root.resolve()
    path = (root / relative).resolve()
    if not any(path.is_relative_to(root / folder) for folder in folders):
        return None
    return path if path.suffix in _TYPES and path.is_file() else None


def _file(path: Path | None, cache_control: str) -> Response:
    if path is None:
        return PlainTextResponse("not found", status_code=404)
    headers = {"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=headers)


def app_file(relative: str) -> Response:
    # Revalidated each time (FileResponse sends an ETag): our scripts change with every release.
    return _file(_inside(APP_DIR, relative), "no-cache")


def vendor_file(assets_dir: Path | None, relative: str) -> Response:
    if assets_dir is None:
        return _file(None, "")
    # The lock file pins these versions; an hour keeps a page's 3 MB of modules out of each visit.
    return _file(_inside(assets_dir, relative, VENDOR_FOLDERS), "public, max-age=3600")


def vendor_installed(assets_dir: Path | None) -> bool:
    return assets_dir is not None and (assets_dir / SPARK_ENTRY).is_file()


def origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def content_security_policy(*, scripts: bool, connect: tuple[str, ...] = ()) -> str:
    """Our own files only. The 3D viewer also needs: the import map (by hash), WebAssembly
    compiled from bytes ('wasm-unsafe-eval': Spark's sorter and decoders are Rust/Wasm) and workers
    made from blob: URLs (Spark builds its worker script in memory)."""
    script = f"'self' '{IMPORT_MAP_HASH}' 'wasm-unsafe-eval'" if scripts else "'none'"
    directives = [
        "default-src 'none'",
        f"script-src {script}",
        "worker-src blob:" if scripts else "worker-src 'none'",
        " ".join(["connect-src 'self'", *connect, "blob: data:"]) if scripts else "connect-src 'none'",
        "img-src 'self' data: blob:",
        "style-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)
