"""Storage backends of presence: Redis (shared by every hub process) and in-process (embedded).

Both are atomic per call. Redis keys per (tenant, resource): `…:exp` (sorted set member → expiry ms),
`…:data` (hash member → entry JSON), `…:ann` (hash uid → announced view); `hub:presence:index`
holds a lower bound of each resource's next expiry for the sweepers.
"""

from __future__ import annotations

import json
import time
from typing import Protocol

from redis.asyncio import Redis

from hub.presence.model import Entry, View


class Backend(Protocol):
    """Storage primitives; both implementations are atomic per call."""

    async def touch(self, tenant: str, resource: str, entry: Entry, keep_ms: int) -> None: ...
    async def entries(self, tenant: str, resource: str) -> list[Entry]: ...
    async def pop_expired(self, now: float) -> list[tuple[str, str, Entry]]: ...
    async def announce(self, tenant: str, resource: str, uid: str, view: View | None, keep_ms: int) -> bool: ...
    async def announced(self, tenant: str, resource: str) -> dict[str, View]: ...
    async def status(self, tenant: str, uid: str, status: str | None) -> str | None: ...
    async def hit(self, key: str, window_s: float) -> int: ...
    async def close(self) -> None: ...


# KEYS: exp, data, index. ARGV: member, entry json, expires ms, index member, keep ms
_TOUCH = """
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], 'LT', ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""

# KEYS: exp, data, index. ARGV: now ms, index member. Returns the removed entries.
_SWEEP = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, m in ipairs(gone) do
  redis.call('ZREM', KEYS[1], m)
  local d = redis.call('HGET', KEYS[2], m)
  redis.call('HDEL', KEYS[2], m)
  if d then table.insert(out, d) end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then
  redis.call('ZADD', KEYS[3], first[2], ARGV[2])
else
  redis.call('ZREM', KEYS[3], ARGV[2])
end
return out
"""

# KEYS: ann. ARGV: uid, view key ('' = absent), keep ms, view JSON. Values are "key\nJSON";
# returns 1 when the announced key changed (a new `updated_at` alone is not a change).
_ANNOUNCE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  if cur then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end
  return 0
end
local nl = string.char(10)
if cur and string.sub(cur, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. nl then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. nl .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

INDEX = "hub:presence:index"


class RedisBackend:
    """Presence in Redis, shared by every hub process."""

    def __init__(self, url: str) -> None:
        self.redis: Redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._touch = self.redis.register_script(_TOUCH)
        self._sweep = self.redis.register_script(_SWEEP)
        self._announce = self.redis.register_script(_ANNOUNCE)

    @staticmethod
    def _key(tenant: str, resource: str, part: str) -> str:
        return f"hub:presence:{json.dumps([tenant, resource], separators=(',', ':'))}:{part}"

    async def touch(self, tenant: str, resource: str, entry: Entry, keep_ms: int) -> None:
        keys = [self._key(tenant, resource, "exp"), self._key(tenant, resource, "data"), INDEX]
        index_member = json.dumps([tenant, resource])
        await self._touch(keys=keys, args=[entry.member, entry.to_json(), int(entry.expires_at * 1000),
                                           index_member, keep_ms])

    async def entries(self, tenant: str, resource: str) -> list[Entry]:
        raw = await self.redis.hvals(self._key(tenant, resource, "data"))
        return [Entry.from_json(r) for r in raw]

    async def pop_expired(self, now: float) -> list[tuple[str, str, Entry]]:
        due = await self.redis.zrangebyscore(INDEX, "-inf", int(now * 1000), start=0, num=200)
        out: list[tuple[str, str, Entry]] = []
        for index_member in due:
            assert isinstance(index_member, (bytes, str))
            tenant, resource = json.loads(index_member)
            keys = [self._key(tenant, resource, "exp"), self._key(tenant, resource, "data"), INDEX]
            gone = await self._sweep(keys=keys, args=[int(now * 1000), index_member])
            out.extend((tenant, resource, Entry.from_json(raw)) for raw in gone)
        return out

    async def announce(self, tenant: str, resource: str, uid: str, view: View | None, keep_ms: int) -> bool:
        args: list[str | int] = [uid, "", keep_ms, ""] if view is None else [uid, view.key(), keep_ms, view.to_json()]
        return bool(await self._announce(keys=[self._key(tenant, resource, "ann")], args=args))

    async def announced(self, tenant: str, resource: str) -> dict[str, View]:
        raw = await self.redis.hgetall(self._key(tenant, resource, "ann"))
        return {_text(uid): View.from_json(_text(value).partition("\n")[2]) for uid, value in raw.items()}

    async def status(self, tenant: str, uid: str, status: str | None) -> str | None:
        key = f"hub:presence-status:{json.dumps(tenant)}"
        if status is not None:
            await self.redis.hset(key, uid, status)
            return status
        raw = await self.redis.hget(key, uid)
        return None if raw is None else _text(raw)

    async def hit(self, key: str, window_s: float) -> int:
        window = max(1, int(window_s * 1000))
        slot = f"hub:rate:{key}:{int(time.time() * 1000) // window}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(slot)
            pipe.pexpire(slot, window * 2)
            count, _ = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        await self.redis.aclose()


class MemoryBackend:
    """The in-process equivalent for the embedded single-process hub (same semantics)."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], dict[str, Entry]] = {}
        self._ann: dict[tuple[str, str], dict[str, View]] = {}
        self._status: dict[tuple[str, str], str] = {}
        self._hits: dict[str, int] = {}

    async def touch(self, tenant: str, resource: str, entry: Entry, keep_ms: int) -> None:
        self._data.setdefault((tenant, resource), {})[entry.member] = entry

    async def entries(self, tenant: str, resource: str) -> list[Entry]:
        return list(self._data.get((tenant, resource), {}).values())

    async def pop_expired(self, now: float) -> list[tuple[str, str, Entry]]:
        out: list[tuple[str, str, Entry]] = []
        for (tenant, resource), entries in list(self._data.items()):
            for key, entry in list(entries.items()):
                if entry.expires_at <= now:
                    del entries[key]
                    out.append((tenant, resource, entry))
            if not entries:
                del self._data[(tenant, resource)]
        return out

    async def announce(self, tenant: str, resource: str, uid: str, view: View | None, keep_ms: int) -> bool:
        ann = self._ann.setdefault((tenant, resource), {})
        if view is None:
            return ann.pop(uid, None) is not None
        current = ann.get(uid)
        if current is not None and current.key() == view.key():
            return False
        ann[uid] = view
        return True

    async def announced(self, tenant: str, resource: str) -> dict[str, View]:
        return dict(self._ann.get((tenant, resource), {}))

    async def status(self, tenant: str, uid: str, status: str | None) -> str | None:
        if status is not None:
            self._status[(tenant, uid)] = status
        return self._status.get((tenant, uid))

    async def hit(self, key: str, window_s: float) -> int:
        slot = f"{key}:{int(time.time() / window_s)}"
        if len(self._hits) > 10_000:
            self._hits.clear()  # old windows; a reset only forgives a little
        self._hits[slot] = self._hits.get(slot, 0) + 1
        return self._hits[slot]

    async def close(self) -> None:
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
