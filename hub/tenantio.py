"""`collabhub export` / `collabhub import`: a whole tenant as JSON lines, GridFS files included.

File format (one JSON object per line, MongoDB canonical extended JSON via `bson.json_util`, so
dates, binary chunks and 64-bit integers round-trip exactly):

    {"format": "collabhub-tenant", "version": 1, "tenant": "acme", "exportedAt": {...}}
    {"c": "<collection>", "d": {<document>}}          (every document of the tenant)
    {"end": true, "counts": {"<collection>": n, ...}}  (a file without it is refused as truncated)

Every collection holding documents with `tenant: T` is exported, plus the GridFS files whose
`metadata.tenant` is T and their chunks. Import goes into an empty tenant only (refused
otherwise); a failed import removes what it wrote. Importing under another tenant name gives every
object a new id (ids are unique per database, not per tenant): ids are rewritten consistently in
every field, inside stream names and inside stored event cursors. Event `seq` counters are kept,
so stream cursors issued before the export stay meaningful after a same-name restore.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from bson import ObjectId, json_util
from pymongo.errors import PyMongoError

from hub.embedded import EmbeddedStore, data_store
from hub.settings import Settings
from hub.store import Doc, Store

FORMAT, VERSION = "collabhub-tenant", 1
BATCH = 500
_OPTIONS = json_util.CANONICAL_JSON_OPTIONS
_OID = re.compile(r"(?<![0-9a-f])[0-9a-f]{24}(?![0-9a-f])")
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")


class TenantIOError(Exception):
    """A refused export/import (the message says why and what to do)."""


def _is_files(name: str) -> bool:
    return name.endswith(".files")


def _is_chunks(name: str) -> bool:
    return name.endswith(".chunks")


async def collections(store: Store) -> list[str]:
    names = await store.db.list_collection_names()
    return sorted(n for n in names if not n.startswith("system."))


async def documents(store: Store, tenant: str) -> AsyncIterator[tuple[str, Doc]]:
    """Every `(collection, document)` of the tenant; GridFS chunks right after their files."""
    names = await collections(store)
    for name in names:
        coll = store.db[name]
        if _is_chunks(name):
            continue
        if _is_files(name):
            chunks = store.db[name[: -len(".files")] + ".chunks"]
            async for doc in coll.find({"metadata.tenant": tenant}).sort("_id", 1):
                yield name, doc
                async for chunk in chunks.find({"files_id": doc["_id"]}).sort("n", 1):
                    yield chunks.name, chunk
            continue
        async for doc in coll.find({"tenant": tenant}).sort("_id", 1):
            yield name, doc


async def has_data(store: Store, tenant: str) -> str | None:
    """The name of a collection holding something of the tenant, or `None` when it is empty."""
    for name in await collections(store):
        if _is_chunks(name):
            continue
        field = "metadata.tenant" if _is_files(name) else "tenant"
        if await store.db[name].find_one({field: tenant}, projection={"_id": 1}) is not None:
            return name
    return None


async def wipe(store: Store, tenant: str) -> int:
    """Delete everything of a tenant (documents and GridFS files); returns how many documents."""
    deleted = 0
    for name in await collections(store):
        if _is_chunks(name):
            continue
        coll = store.db[name]
        if _is_files(name):
            ids = [d["_id"] async for d in coll.find({"metadata.tenant": tenant}, projection={"_id": 1})]
            if ids:
                chunks = store.db[name[: -len(".files")] + ".chunks"]
                deleted += (await chunks.delete_many({"files_id": {"$in": ids}})).deleted_count
                deleted += (await coll.delete_many({"_id": {"$in": ids}})).deleted_count
            continue
        deleted += (await coll.delete_many({"tenant": tenant})).deleted_count
    return deleted


async def export(
    store: Store, tenant: str, out: TextIO, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Write the tenant to `out`; returns documents per collection."""
    counts: dict[str, int] = {}
    out.write(json_util.dumps({"format": FORMAT, "version": VERSION, "tenant": tenant,
                               "exportedAt": datetime.now(UTC)}, json_options=_OPTIONS) + "\n")
    async for name, doc in documents(store, tenant):
        out.write(json_util.dumps({"c": name, "d": doc}, json_options=_OPTIONS) + "\n")
        counts[name] = counts.get(name, 0) + 1
        if progress:
            progress(sum(counts.values()))
    if not counts:
        raise TenantIOError(f"Tenant '{tenant}' has no data")
    out.write(json_util.dumps({"end": True, "counts": counts}) + "\n")
    return counts


class Renamer:
    """Rewrites a tenant's documents for another tenant name: new ids everywhere, consistently."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new
        self.ids: dict[str, str] = {}

    def _oid(self, hexid: str) -> str:
        if hexid not in self.ids:
            self.ids[hexid] = str(ObjectId())
        return self.ids[hexid]

    def text(self, value: str) -> str:
        if value.startswith(f"{self.old}/"):  # event counters: `<tenant>/<stream>`
            value = f"{self.new}/{value[len(self.old) + 1:]}"
        value = value.replace(f"usr|{self.old}|", f"usr|{self.new}|")
        if len(value) >= 16 and _B64.match(value) and not _OID.search(value):
            cursor = _cursor(value)
            if cursor is not None:  # an event cursor stored in a document (`ev|<stream>|<seq>`)
                return _encode_cursor(self.text(cursor))
        return _OID.sub(lambda m: self._oid(m.group(0)), value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, ObjectId):
            return ObjectId(self._oid(str(value)))
        if isinstance(value, dict):
            return {k: (self.new if k == "tenant" and v == self.old else self.value(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def _cursor(value: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return raw if raw.startswith("ev|") and raw.count("|") == 2 else None


def _encode_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read(lines: Iterable[str]) -> tuple[dict[str, Any], list[tuple[str, Doc]]]:
    """Parse and check an export: its header and its `(collection, document)` records."""
    header: dict[str, Any] | None = None
    records: list[tuple[str, Doc]] = []
    end: dict[str, Any] | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json_util.loads(line, json_options=_OPTIONS)
        except ValueError as exc:
            raise TenantIOError(f"line {number} is not extended JSON: {exc}") from exc
        if header is None:
            if item.get("format") != FORMAT or item.get("version") != VERSION:
                raise TenantIOError("Not a collabhub tenant export (bad header)")
            header = item
        elif item.get("end"):
            end = item
        else:
            records.append((item["c"], item["d"]))
    if header is None or end is None:
        raise TenantIOError("The export is truncated (no end line); export it again")
    counted: dict[str, int] = {}
    for name, _ in records:
        counted[name] = counted.get(name, 0) + 1
    if counted != end["counts"]:
        raise TenantIOError("The export is inconsistent (counts differ from its end line)")
    return header, records


async def import_(store: Store, lines: Iterable[str], tenant: str | None = None,
                  progress: Callable[[int], None] | None = None) -> tuple[str, dict[str, int]]:
    """Load an export into an empty tenant (its own name unless `tenant`); returns (tenant, counts)."""
    header, records = read(lines)
    source: str = header["tenant"]
    target = tenant or source
    if (found := await has_data(store, target)) is not None:
        raise TenantIOError(f"Tenant '{target}' is not empty (it has {found}); import into a new tenant "
                            "with --tenant NEW, or remove it first")
    await store.ensure_indexes()
    renamer = Renamer(source, target) if target != source else None
    counts: dict[str, int] = {}
    batches: dict[str, list[Doc]] = {}
    try:
        for name, doc in records:
            if renamer is not None:
                doc = renamer.value(doc)
            batch = batches.setdefault(name, [])
            batch.append(doc)
            if len(batch) >= BATCH:
                await _flush(store, name, batch, counts, progress)
        for name, batch in batches.items():
            await _flush(store, name, batch, counts, progress)
    except BaseException:
        await wipe(store, target)  # the tenant was empty: leave it so
        raise
    return target, counts


async def _flush(store: Store, name: str, batch: list[Doc], counts: dict[str, int],
                 progress: Callable[[int], None] | None) -> None:
    if batch:
        await store.db[name].insert_many(batch, ordered=True)
        counts[name] = counts.get(name, 0) + len(batch)
        batch.clear()
        if progress:
            progress(sum(counts.values()))


# -- the CLI commands -------------------------------------------------------------------------------


async def open_store(settings: Settings) -> tuple[Store, EmbeddedStore | None]:
    """The configured store (starting the embedded one under `HUB_DATA_DIR` when no URL is set:
    stop a hub serving that directory first)."""
    embedded = None
    url = settings.mongodb_url
    if not url:
        embedded = data_store(settings.data_dir).start()
        url = embedded.url
    return Store(url, settings.mongodb_db), embedded


def _counter(what: str) -> Callable[[int], None]:
    def show(done: int) -> None:
        if done % 200 == 0:
            sys.stderr.write(f"\r{what}: {done} documents")
            sys.stderr.flush()

    return show


def run_export(settings: Settings, tenant: str, path: str) -> int:
    """`collabhub export`: exit status 0, or 1 with the reason on stderr."""
    if path == "-":
        return asyncio.run(_export(settings, tenant, sys.stdout, None))
    with open(path, "w", encoding="utf-8") as out:
        return asyncio.run(_export(settings, tenant, out, _counter("exported")))


async def _export(settings: Settings, tenant: str, out: TextIO, progress: Callable[[int], None] | None) -> int:
    store, embedded = await open_store(settings)
    try:
        counts = await export(store, tenant, out, progress)
    except TenantIOError as exc:
        print(f"export refused: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()
    print(f"\nexported tenant '{tenant}': {sum(counts.values())} documents in {len(counts)} collections",
          file=sys.stderr)
    return 0


def run_import(settings: Settings, path: str, tenant: str | None) -> int:
    """`collabhub import`: exit status 0, or 1 with the reason on stderr."""
    import schema  # noqa: F401  (registers every domain's indexes)

    with open(path, encoding="utf-8") as lines:
        return asyncio.run(_import(settings, list(lines), tenant))


async def _import(settings: Settings, lines: list[str], tenant: str | None) -> int:
    store, embedded = await open_store(settings)
    try:
        target, counts = await import_(store, lines, tenant, _counter("imported"))
    except TenantIOError as exc:
        print(f"import refused: {exc}", file=sys.stderr)
        return 1
    except PyMongoError as exc:
        print(f"import failed ({type(exc).__name__}: {str(exc)[:300]}); nothing was kept", file=sys.stderr)
        return 1
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()
    print(f"\nimported tenant '{target}': {sum(counts.values())} documents in {len(counts)} collections",
          file=sys.stderr)
    return 0
