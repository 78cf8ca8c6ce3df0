"""MongoDB access through PyMongo's async API, scoped to one tenant in this one place.

Resolvers never see a raw collection: `store.tenant(t)["cases"]` adds the tenant to every
filter, insert and pipeline, and joins the transaction that is open in this task (if any).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar

import pymongo
from bson import ObjectId
from pymongo import AsyncMongoClient, IndexModel, ReturnDocument, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError

from hub.errors import ErrorCode, HubError

Doc = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger("hub.store")

_session: contextvars.ContextVar[AsyncClientSession | None] = contextvars.ContextVar(
    "hub_store_session", default=None
)

# collection -> indexes; domain modules register theirs at import time.
INDEXES: dict[str, list[IndexModel]] = {}


def register_indexes(collection: str, *indexes: IndexModel) -> None:
    """Declare indexes for a collection; created idempotently at start-up."""
    known = {tuple(i.document["key"].items()) for i in INDEXES.get(collection, [])}
    for index in indexes:
        if tuple(index.document["key"].items()) not in known:
            INDEXES.setdefault(collection, []).append(index)


def new_id(prefix: str) -> str:
    """An opaque, time-ordered id such as `case_6b02c2a6b4a409d83bbfa7e2`."""
    return f"{prefix}_{ObjectId()}"


def now_ms() -> int:
    return int(time.time() * 1000)


UNAVAILABLE_MESSAGE = "The store is unavailable or overloaded; retry shortly"


def is_outage(exc: BaseException) -> bool:
    """True for a store failure the client should simply retry: unreachable, hung or restarting.

    `ConnectionFailure` covers `AutoReconnect`, `NetworkTimeout`, `ServerSelectionTimeoutError`,
    `NotPrimaryError` (also a shutting-down server) and `WaitQueueTimeoutError`; any other
    PyMongo error flagged `timeout` (a deadline of :meth:`Store.transaction` ran out) counts too.
    """
    return isinstance(exc, ConnectionFailure) or (isinstance(exc, PyMongoError) and exc.timeout)


class _OutageLog:
    """Logs store outages at most once a second, with how many were not logged in between."""

    def __init__(self) -> None:
        self.last = 0.0
        self.quiet = 0

    def __call__(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self.last < 1.0:
            self.quiet += 1
            return
        log.warning("store unavailable (%d more since the last report): %s: %s",
                    self.quiet, type(exc).__name__, str(exc)[:300])
        self.last, self.quiet = now, 0


_report_outage = _OutageLog()


def unavailable(exc: BaseException) -> HubError:
    """The one client-facing form of a store outage: `UNAVAILABLE`, "retry shortly" (logged)."""
    _report_outage(exc)
    return HubError(ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE)


@asynccontextmanager
async def outage_as_unavailable() -> AsyncIterator[None]:
    """Re-raise a store outage inside the block as `HubError(UNAVAILABLE)` (see :func:`is_outage`)."""
    try:
        yield
    except PyMongoError as exc:
        if is_outage(exc):
            raise unavailable(exc) from exc
        raise


_background: contextvars.ContextVar[bool] = contextvars.ContextVar("hub_store_background", default=False)


def background_job() -> None:
    """Mark the current task as a runtime job (relay, prune, webhooks): its commands are counted apart."""
    _background.set(True)


class CommandCounter(monitoring.CommandListener):
    """Counts store round-trips of requests (`commands`) and of runtime jobs (`background`).

    PyMongo calls listeners in the task that runs the command, so the split follows the task.
    """

    def __init__(self) -> None:
        self.commands = 0
        self.background = 0
        self.failures = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if _background.get():
            self.background += 1
        else:
            self.commands += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.failures += 1


POOL_SIZE = 100
"""Connections to the store per process (PyMongo's `maxPoolSize`)."""
GATE_SLOTS = 16
"""Of those, how many operations outside transactions may run at once (see :class:`Gate`); the rest
are kept for transactions and runtime jobs, so writes go on while a burst of reads queues. More
would not be served faster: the store's own capacity is the limit."""


class Gate:
    """Admission of tenant operations that run outside a transaction: at most `slots` at once,
    the others wait their turn in order.

    Every operation has a deadline (`Store.timeout`) that includes waiting for a pooled
    connection. Without the gate, a burst (a reconnect storm: thousands of subscriptions replaying
    at once) queues on the pool, nearly every queued read misses its deadline, clients retry, and
    the process stays overloaded for good (measured: 415 of 2,000 subscribers served after 90 s).
    Waiting here is not counted, so reads are served in order, and connections stay free for
    transactions (measured: all 2,000 served in 38 to 49 s on 2 busy cores, mutations committing).
    """

    def __init__(self, slots: int) -> None:
        self._slots = asyncio.Semaphore(slots)

    def slot(self) -> AbstractAsyncContextManager[Any]:
        """A slot to run one operation in; inside a transaction none is taken."""
        return nullcontext() if _session.get() is not None else self._slots


class TenantCollection:
    """A collection seen through one tenant: every operation is filtered by `tenant`."""

    def __init__(self, coll: AsyncCollection[Doc], tenant: str, gate: Gate) -> None:
        self._coll = coll
        self.tenant = tenant
        self.name = coll.name
        self._gate = gate

    def _f(self, filter: Mapping[str, Any] | None) -> Doc:
        scoped = dict(filter or {})
        if scoped.get("tenant", self.tenant) != self.tenant:
            raise HubError(ErrorCode.FORBIDDEN, "Cross-tenant access refused")
        scoped["tenant"] = self.tenant
        return scoped

    @staticmethod
    def _s() -> dict[str, Any]:
        session = _session.get()
        return {"session": session} if session is not None else {}

    async def find_one(self, filter: Mapping[str, Any] | None = None, **kw: Any) -> Doc | None:
        async with self._gate.slot():
            return await self._coll.find_one(self._f(filter), **kw, **self._s())

    async def find(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        skip: int = 0,
        projection: Mapping[str, Any] | None = None,
    ) -> list[Doc]:
        cursor = self._coll.find(self._f(filter), projection=projection, **self._s())
        if sort:
            cursor = cursor.sort(list(sort))
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        async with self._gate.slot():
            return await cursor.to_list()

    async def count(self, filter: Mapping[str, Any] | None = None) -> int:
        async with self._gate.slot():
            return await self._coll.count_documents(self._f(filter), **self._s())

    async def insert(self, doc: Doc) -> Doc:
        doc = {**doc, "tenant": self.tenant}
        async with self._gate.slot():
            await self._coll.insert_one(doc, **self._s())
        return doc

    async def insert_many(self, docs: Sequence[Doc]) -> None:
        if docs:
            async with self._gate.slot():
                await self._coll.insert_many([{**d, "tenant": self.tenant} for d in docs], **self._s())

    async def update_one(self, filter: Mapping[str, Any], update: Mapping[str, Any], **kw: Any) -> int:
        async with self._gate.slot():
            result = await self._coll.update_one(self._f(filter), self._u(update), **kw, **self._s())
        return result.matched_count

    async def update_many(self, filter: Mapping[str, Any], update: Mapping[str, Any]) -> int:
        async with self._gate.slot():
            result = await self._coll.update_many(self._f(filter), self._u(update), **self._s())
        return result.modified_count

    async def find_one_and_update(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool = False,
        projection: Mapping[str, Any] | None = None,
    ) -> Doc | None:
        async with self._gate.slot():
            return await self._coll.find_one_and_update(
                self._f(filter), self._u(update, upsert), upsert=upsert, projection=projection,
                return_document=ReturnDocument.AFTER, **self._s(),
            )

    async def delete_one(self, filter: Mapping[str, Any]) -> int:
        async with self._gate.slot():
            return (await self._coll.delete_one(self._f(filter), **self._s())).deleted_count

    async def delete_many(self, filter: Mapping[str, Any]) -> int:
        async with self._gate.slot():
            return (await self._coll.delete_many(self._f(filter), **self._s())).deleted_count

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]]) -> list[Doc]:
        stages = [{"$match": {"tenant": self.tenant}}, *pipeline]
        async with self._gate.slot():
            cursor = await self._coll.aggregate(stages, **self._s())
            return await cursor.to_list()

    def _u(self, update: Mapping[str, Any], upsert: bool = False) -> Doc:
        if any(k.startswith("$") for k in update):
            for op in ("$set", "$unset"):
                if "tenant" in update.get(op, {}):
                    raise HubError(ErrorCode.FORBIDDEN, "The tenant of a document cannot change")
            if upsert:
                return {**update, "$setOnInsert": {**update.get("$setOnInsert", {}), "tenant": self.tenant}}
            return dict(update)
        raise ValueError("replacement updates are not allowed; use operators")


class TenantDB:
    """All collections of one tenant."""

    def __init__(self, db: AsyncDatabase[Doc], tenant: str, gate: Gate) -> None:
        self._db = db
        self.tenant = tenant
        self._gate = gate

    def __getitem__(self, name: str) -> TenantCollection:
        return TenantCollection(self._db[name], self.tenant, self._gate)


class Store:
    """Owns the one `AsyncMongoClient` of this event loop (created in the app lifespan)."""

    def __init__(self, url: str, db_name: str, *, timeout: float = 10.0, select_timeout: float = 3.0) -> None:
        """`timeout` bounds every operation, its retries and its wait for a pooled connection
        included (PyMongo's `timeoutMS`), and a whole transaction with its retries; `select_timeout`
        bounds finding the server. A dead or hung store then fails requests with `UNAVAILABLE`
        within seconds instead of hanging them; :class:`Gate` keeps bursts from turning that
        deadline against the hub (docs/reliability.md)."""
        self.counter = CommandCounter()
        self.timeout = timeout
        self.gate = Gate(GATE_SLOTS)
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url, tz_aware=True, timeoutMS=int(timeout * 1000), serverSelectionTimeoutMS=int(select_timeout * 1000),
            connectTimeoutMS=int(timeout * 1000), maxPoolSize=POOL_SIZE, maxConnecting=8, retryWrites=True,
            event_listeners=[self.counter], uuidRepresentation="standard",
        )
        self.db: AsyncDatabase[Doc] = self.client[db_name]

    def tenant(self, tenant: str) -> TenantDB:
        if not tenant:
            raise HubError(ErrorCode.UNAUTHENTICATED, "No tenant")
        return TenantDB(self.db, tenant, self.gate)

    def raw(self, name: str) -> AsyncCollection[Doc]:
        """Cross-tenant access for runtime jobs only (outbox relay, retention); never resolvers."""
        return self.db[name]

    async def ensure_indexes(self) -> None:
        for name, indexes in INDEXES.items():
            await self.db[name].create_indexes(indexes)

    async def ping(self) -> bool:
        """Readiness: a real round trip, False within a second if the store is down or hung."""
        try:
            with pymongo.timeout(1.0):
                await self.client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    async def close(self) -> None:
        await self.client.close()

    async def transaction(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run `fn` in one multi-document transaction (retried on transient errors).

        Collections obtained anywhere inside `fn` join it automatically. The transaction and its
        retries share one deadline (`timeout`; PyMongo alone retries for 120 s): a store that is
        down, hung or restarting fails it with `HubError(UNAVAILABLE)`, nothing committed —
        unless the commit itself was applied and only its answer was lost (the mutation may then
        have happened: a client retrying a create can create twice).
        """
        if _session.get() is not None:
            return await fn()

        async def body(s: AsyncClientSession) -> T:
            token = _session.set(s)
            try:
                return await fn()
            finally:
                _session.reset(token)

        async with self.client.start_session() as session:
            try:
                with pymongo.timeout(self.timeout):
                    return await session.with_transaction(body)
            except PyMongoError as exc:
                if not is_outage(exc):
                    raise
                await self._kill(session)
                raise unavailable(exc) from exc

    async def _kill(self, session: AsyncClientSession) -> None:
        """Best effort, after a transaction ran out of time: end it on the server now.

        PyMongo's own abort runs on the expired deadline and gives up silently, and a timed-out
        session is discarded, so the store would keep the transaction open — and every document it
        wrote locked against other writers — until its lifetime limit (60 s): one slow mutation
        would make its stream unwritable for a minute. `killSessions` aborts it at once.
        """
        with contextlib.suppress(PyMongoError), pymongo.timeout(1.0):
            await self.client.admin.command("killSessions", [session.session_id])

    @asynccontextmanager
    async def no_transaction(self) -> AsyncIterator[None]:
        """Step outside the current transaction (e.g. for best-effort counters)."""
        token = _session.set(None)
        try:
            yield
        finally:
            _session.reset(token)
