"""Per-request batching loaders: one store round-trip per collection per tick, not per object."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from hub.store import Doc, TenantDB

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Loader(Generic[K, V]):
    """Collects `load(key)` calls made in the same event-loop tick and fetches them at once."""

    def __init__(self, batch: Callable[[Sequence[K]], Awaitable[dict[K, V]]]) -> None:
        self._batch = batch
        self._cache: dict[K, asyncio.Future[V | None]] = {}
        self._queue: list[K] = []

    def load(self, key: K) -> asyncio.Future[V | None]:
        future = self._cache.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._cache[key] = loop.create_future()
            if not self._queue:
                loop.call_soon(lambda: asyncio.ensure_future(self._dispatch()))
            self._queue.append(key)
        return future

    async def load_many(self, keys: Sequence[K]) -> list[V | None]:
        return list(await asyncio.gather(*(self.load(k) for k in keys)))

    def peek(self, key: K) -> tuple[bool, V | None]:
        """`(True, value)` when `key` is loaded already (so no await is needed), else `(False, None)`."""
        future = self._cache.get(key)
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            return False, None
        return True, future.result()

    def prime(self, key: K, value: V) -> None:
        if key not in self._cache:
            future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
            future.set_result(value)
            self._cache[key] = future

    def clear(self, key: K) -> None:
        self._cache.pop(key, None)

    async def _dispatch(self) -> None:
        keys, self._queue = self._queue, []
        try:
            found = await self._batch(keys)
        except Exception as exc:  # hand the failure to every waiter
            for key in keys:
                if not self._cache[key].done():
                    self._cache[key].set_exception(exc)
                self._cache.pop(key, None)
            return
        for key in keys:
            if not self._cache[key].done():
                self._cache[key].set_result(found.get(key))


def by_id(db: TenantDB, collection: str) -> Loader[str, Doc]:
    """A loader of whole documents of one collection by `_id`."""

    async def batch(ids: Sequence[str]) -> dict[str, Doc]:
        docs = await db[collection].find({"_id": {"$in": list(ids)}})
        return {d["_id"]: d for d in docs}

    return Loader(batch)


def grouped(
    db: TenantDB, collection: str, key: str, *, extra: dict[str, Any] | None = None,
    sort: list[tuple[str, int]] | None = None,
) -> Loader[str, list[Doc]]:
    """A loader of all documents whose `key` is one of the keys, grouped by it."""

    async def batch(keys: Sequence[str]) -> dict[str, list[Doc]]:
        docs = await db[collection].find({key: {"$in": list(keys)}, **(extra or {})}, sort=sort)
        out: dict[str, list[Doc]] = {k: [] for k in keys}
        for d in docs:
            out.setdefault(d[key], []).append(d)
        return out

    return Loader(batch)
