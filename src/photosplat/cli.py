"""The ``photosplat`` command.

``photosplat up`` runs all five services in one process on the embedded adapters (in-memory bus,
SQLite, a local folder); ``photosplat serve NAME`` runs one service on the adapters its settings name.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from photosplat_libs.runner import configure_logging, serve
from photosplat_libs.security import new_token
from photosplat_libs.service import Deps, Service


@dataclass(frozen=True)
class ServiceEntry:
    package: str
    settings_class: str
    with_db: bool

    def load(self) -> tuple[Callable[[Any, Deps], Service], type]:
        app = importlib.import_module(f"{self.package}.app")
        settings = importlib.import_module(f"{self.package}.settings")
        return app.create, getattr(settings, self.settings_class)


# Start order matters in one process: status consumes every event, so it starts first.
SERVICES: dict[str, ServiceEntry] = {
    "status": ServiceEntry("photosplat_status", "StatusSettings", with_db=True),
    "ingest": ServiceEntry("photosplat_ingest", "IngestSettings", with_db=True),
    "viewer": ServiceEntry("photosplat_viewer", "ViewerSettings", with_db=True),
    "colmap": ServiceEntry("photosplat_colmap", "ColmapSettings", with_db=False),
    "trainer": ServiceEntry("photosplat_trainer", "TrainerSettings", with_db=False),
}


def _embedded(args: argparse.Namespace) -> None:
    from photosplat_libs.bus.memory import MemoryBus
    from photosplat_libs.db import Database
    from photosplat_libs.store.folder import FolderStore

    data = Path(args.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    base_url = f"http://{args.host}:{args.port}"
    common: dict[str, Any] = {
        "bus_url": "memory://",
        "database_url": f"sqlite+aiosqlite:///{data}/photosplat.db",
        "store_url": f"file:{data}/objects",
        "store_public_url": base_url,
        "host": args.host,
        "port": args.port,
    }
    admin_token = os.environ.get("PHOTOSPLAT_STATUS_ADMIN_TOKEN") or new_token()
    deps = Deps(
        bus=MemoryBus(),
        # Presigned upload URLs of the folder store are signed per process: they live 15 minutes anyway.
        store=FolderStore.from_url(common["store_url"], public_url=base_url, signing_secret=new_token()),
        db=Database(common["database_url"]),
    )
    services: list[Service] = []
    for name, entry in SERVICES.items():
        create, settings_class = entry.load()
        overrides = dict(common)
        if "public_base_url" in settings_class.model_fields:
            overrides["public_base_url"] = base_url
        if name == "status":
            overrides["admin_token"] = admin_token
        if name == "ingest":
            overrides.update(_unlimited_unless_set(settings_class))
        settings = settings_class(**overrides)
        services.append(create(settings, deps))
    configure_logging(args.log_level, args.log_format)
    print(
        f"PhotoSplat (embedded) on {base_url}\n"
        f"  data:  {data}\n"
        f"  admin: {base_url}/admin  (admin token: {admin_token})",
        flush=True,
    )
    asyncio.run(serve(services, deps, host=args.host, port=args.port, log_level=args.log_level))


def _unlimited_unless_set(settings_class: type) -> dict[str, int]:
    """One person's own machine: no quotas (0 = off), except those set in the environment. The
    defaults are for a public instance."""
    prefix = settings_class.model_config["env_prefix"]
    return {
        field: 0
        for field in settings_class.model_fields
        if field.startswith(("client_", "global_")) and (prefix + field).upper() not in os.environ
    }


def _serve(args: argparse.Namespace) -> None:
    runpy.run_module(SERVICES[args.service].package, run_name="__main__")


def _migrate(args: argparse.Namespace) -> None:
    from photosplat_libs.db.engine import migrate_blocking

    migrate_blocking(args.database_url)
    print("database is at the newest schema")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="photosplat", description="Photos in, a shareable Gaussian splat scene out.")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run every service in one process (in-memory bus, SQLite, local folder)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--data", default=os.environ.get("PHOTOSPLAT_DATA_DIR", "data"), help="folder for the database and objects")
    up.add_argument("--log-level", default="INFO")
    up.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text or one JSON object a line (default: PHOTOSPLAT_LOG_FORMAT, else text)",
    )
    up.set_defaults(func=_embedded)

    srv = sub.add_parser("serve", help="run one service against the bus, database and store its settings name")
    srv.add_argument("service", choices=sorted(SERVICES))
    srv.set_defaults(func=_serve)

    mig = sub.add_parser("migrate", help="bring a database to the newest schema")
    mig.add_argument("database_url")
    mig.set_defaults(func=_migrate)

    # Listed here for --help only: main() hands everything after "sfm" to the colmap service's CLI.
    sub.add_parser("sfm", help="camera poses for a local photo folder (IMAGES_DIR --out DIR; see sfm --help)", add_help=False)
    # Likewise "train": the trainer service's CLI parses its own arguments.
    sub.add_parser("train", help="train a splat scene from an SfM folder (SFM_DIR --out DIR --preset P; see train --help)", add_help=False)
    sub.add_parser("reconstruct", help="photos to scene locally, no services (IMAGES_DIR --out DIR)", add_help=False)
    # A running server's client (package photosplat-client), with its own parser: see CLIENT_COMMANDS.
    for name, about in CLIENT_COMMANDS.items():
        sub.add_parser(name, help=f"{about} (see {name} --help)", add_help=False)
    return p


# Commands with their own argument parsers, imported only when used (they pull in pycolmap, torch).
DELEGATED: dict[str, str] = {
    "sfm": "photosplat_colmap.cli",
    "train": "photosplat_trainer.cli",
    "reconstruct": "photosplat.reconstruct",
    "api-key": "photosplat_ingest.api_keys",
}


# Commands of photosplat-client against a running server (--server URL): its parser takes them whole.
CLIENT_COMMANDS: dict[str, str] = {
    "submit": "upload a folder of photos as a new job, resumably (PHOTOS_DIR --server URL)",
    "status": "where a job stands (JOB --token T)",
    "wait": "follow a job until it ends (JOB --token T)",
    "download": "download a finished scene (JOB --format spz|ply|splat|sog)",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        raise SystemExit(importlib.import_module(DELEGATED[argv[0]]).main(argv[1:]))
    if argv and argv[0] in CLIENT_COMMANDS:
        from photosplat_client.cli import main as client_main

        raise SystemExit(client_main(argv, prog="photosplat"))
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
