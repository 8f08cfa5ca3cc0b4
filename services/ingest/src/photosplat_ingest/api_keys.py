"""API keys that lift ingest's rate limits, managed by the operator from a shell:

    python -m photosplat_ingest.api_keys create NAME [--callback-url URL]
                                  # prints the key (only its hash is kept) and its webhook secret
    python -m photosplat_ingest.api_keys list
    python -m photosplat_ingest.api_keys revoke ID

on the database of ingest's settings (PHOTOSPLAT_INGEST_DATABASE_URL) or ``--database-url``. A client
sends the key as ``X-API-Key``. The webhooks of its jobs are signed with the key's webhook secret
and go to the job's own ``callback_url``, else to the key's (docs/architecture.md §5.12).
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
from photosplat_libs.webhooks import CallbackRefused, check_callback_url, new_secret

from photosplat_ingest import repository
from photosplat_ingest.settings import IngestSettings

# Tells a key from an owner token at a glance (in a config file, a log line, a secret scanner).
KEY_PREFIX = "psk_"
MAX_NAME_LENGTH = 100


async def create_key(db: Database, name: str, callback_url: str | None = None) -> tuple[ApiKey, str]:
    key = KEY_PREFIX + new_token()
    row = ApiKey(
        name=name,
        key_hash=hash_token(key),
        created_at=datetime.now(timezone.utc),
        webhook_secret=new_secret(),
        callback_url=callback_url,
    )
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
    create = sub.add_parser("create", help="issue a key (printed once) and its webhook secret")
    create.add_argument("name", type=_name)
    create.add_argument("--callback-url", help="where the end of each job created with the key is announced")
    sub.add_parser("list", help="every key: id, name, created, revoked")
    sub.add_parser("revoke", help="revoke a key by its id").add_argument("id", type=int)
    return p


async def _run(args: argparse.Namespace) -> int:
    db = Database(args.database_url or IngestSettings().database_url)
    try:
        await migrate(db)
        if args.action == "create":
            return await _create(db, args)
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


async def _create(db: Database, args: argparse.Namespace) -> int:
    if args.callback_url:
        try:
            allow_private = IngestSettings().webhook_allow_private_addresses
            await check_callback_url(args.callback_url, allow_private=allow_private)
        except CallbackRefused as error:
            print(f"--callback-url refused by rule {error.rule}: {error.message}", file=sys.stderr)
            return 2
    row, key = await create_key(db, args.name, args.callback_url or None)
    print(f"API key {row.id} ({row.name}): {key}\nKeep it now: only its hash is stored.")
    print(f"Webhook secret (verifies the PhotoSplat-Signature of its jobs' webhooks): {row.webhook_secret}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_run(parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
