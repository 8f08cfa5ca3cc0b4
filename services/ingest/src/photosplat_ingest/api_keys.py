"""API keys that lift ingest's rate limits, managed by the operator from a shell:

    python -m photosplat_ingest.api_keys create NAME    # prints the key once; only its hash is kept
    python -m photosplat_ingest.api_keys list
    python -m photosplat_ingest.api_keys revoke ID

on the database of ingest's settings (PHOTOSPLAT_INGEST_DATABASE_URL) or ``--database-url``. A client
sends the key as ``X-API-Key``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime, timezone

from photosplat_libs.db import Database, migrate
from photosplat_libs.db.models import ApiKey
from photosplat_libs.security import hash_token, new_token

from photosplat_ingest import repository
from photosplat_ingest.settings import IngestSettings

# Tells a key from an owner token at a glance (in a config file, a log line, a secret scanner).
KEY_PREFIX = "psk_"
MAX_NAME_LENGTH = 100


async def create_key(db: Database, name: str) -> tuple[ApiKey, str]:
    key = KEY_PREFIX + new_token()
    row = ApiKey(name=name, key_hash=hash_token(key), created_at=datetime.now(timezone.utc))
    async with db.transaction() as session:
        repository.add_api_key(session, row)
    return row, key


async def list_keys(db: Database) -> Sequence[ApiKey]:
    async with db.transaction() as session:
        return await repository.api_keys(session)


async def revoke_key(db: Database, key_id: int) -> bool:
    async with db.transaction() as session:
        return await repository.revoke_api_key(session, key_id, datetime.now(timezone.utc))


def _name(value: str) -> str:
    if not 0 < len(value) <= MAX_NAME_LENGTH:
        raise argparse.ArgumentTypeError(f"a name of 1 to {MAX_NAME_LENGTH} characters")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="photosplat api-key", description="API keys that lift ingest's rate limits")
    p.add_argument("--database-url", help="default: PHOTOSPLAT_INGEST_DATABASE_URL or ingest's default")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("create", help="issue a key (printed once)").add_argument("name", type=_name)
    sub.add_parser("list", help="every key: id, name, created, revoked")
    sub.add_parser("revoke", help="revoke a key by its id").add_argument("id", type=int)
    return p


async def _run(args: argparse.Namespace) -> int:
    db = Database(args.database_url or IngestSettings().database_url)
    try:
        await migrate(db)
        if args.action == "create":
            row, key = await create_key(db, args.name)
            print(f"API key {row.id} ({row.name}): {key}\nKeep it now: only its hash is stored.")
        elif args.action == "list":
            for row in await list_keys(db):
                state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
                print(f"{row.id}\t{row.name}\tcreated {row.created_at:%Y-%m-%d %H:%M}\t{state}")
        elif not await revoke_key(db, args.id):
            print(f"no active API key with id {args.id}", file=sys.stderr)
            return 1
        else:
            print(f"API key {args.id} revoked")
        return 0
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_run(parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
