"""The Lua scripts :class:`~opensms_async.stores.redis.RedisStore` runs inside Redis.

A script runs atomically: no other client's command interleaves with it, so replicas that merge
updates to the same recipient at the same moment never lose one.

``MERGE`` is the Lua twin of :func:`opensms_async._state.merge`. Its tables (``RANK``,
``FINAL_ORDER``, ``FINAL``) are generated from ``_state._RANK``, ``_state._FINAL_ORDER``,
``_state._UNKNOWN_RANK`` and ``_models.FINAL_STATUSES`` when this module is imported, so the two
cannot drift; the functions mirror ``_state``'s one for one, and a test checks with hypothesis
that any batches give the states and events of a fold of ``merge``
(``tests/test_store_redis.py::test_redis_merge_script_equals_python_merge``). The script writes
a state whenever it differs from the one read (so a sender learned alongside a losing
contradicting final is stored too), and answers only the events it logged, with the id of the
stream's entry just before them (the store hands its events on as the run of the log after that
id, so its live consumers take them without reading them back). Replicas of different versions may
share one Redis: each loads its own version's script (by its SHA) and reads only that script's
replies; what they share is the keys, whose layout this does not change.

A state is stored as a JSON array ``[status, parts_delivered, sms_parts, sender, conflict, at]``
(``null`` for None) in a hash per request id, one field per address. ``at`` travels as the decimal
string Python wrote (Lua would round a float), part counts as small integers.

No key carries a TTL: Redis's ``volatile-*`` eviction policies (the default of managed services)
evict only keys with one, and would pick exactly the states. Expiry is the store's own: every script
that writes a request's state or schedule entry scores the request id in the expiry index (a sorted
set) with the time, in ms on the server's clock, ``retention`` after now; ``PURGE`` deletes the
requests that are due. Writing a key also ``PERSIST``s it, and ``MIGRATE`` moves the TTL an earlier
version set on a key into the index, so a store it wrote stays readable and becomes safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from string import Template
from typing import Final

from .._models import FINAL_STATUSES
from .._state import _FINAL_ORDER, _RANK, _UNKNOWN_RANK

__all__ = ["CLAIM_DUE", "MERGE", "MIGRATE", "PURGE", "RESCHEDULE", "SCHEDULE", "UNSCHEDULE"]


def lua_string(text: str) -> str:
    """``text`` as a Lua 5.1 string literal: letters and digits kept, every other byte escaped."""
    body = "".join(
        chr(byte) if chr(byte).isascii() and chr(byte).isalnum() else f"\\{byte:03d}"
        for byte in text.encode()
    )
    return f'"{body}"'


def lua_table(mapping: Mapping[str, int]) -> str:
    """A Lua table literal mapping each string key to its integer."""
    items = ", ".join(
        f"[{lua_string(key)}] = {int(value)}" for key, value in sorted(mapping.items())
    )
    return "{" + items + "}"


def lua_set(members: Iterable[str]) -> str:
    """A Lua table literal with each member mapped to true."""
    return "{" + ", ".join(f"[{lua_string(m)}] = true" for m in sorted(members)) + "}"


_EXPIRY: Final = r"""
-- The server's clock in ms (the same for every replica, whatever their clocks say).
local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A key of request_id was just written: no TTL on it (an earlier version set one), and the
-- request expires retention ms from now (never with retention 0).
local function keep(index, request_id, key, retention, now)
  redis.call("PERSIST", key)
  if retention > 0 then
    redis.call("ZADD", index, now + retention, request_id)
  else
    redis.call("ZREM", index, request_id)
  end
end
"""

_MERGE_TEMPLATE: Final = Template(
    _EXPIRY
    + r"""
-- KEYS[1]: the event stream; KEYS[2]: the expiry index; KEYS[3..]: one state hash per request id.
-- ARGV[1]: approximate MAXLEN of the stream; ARGV[2]: retention in ms (0: keep for good);
-- ARGV[3]: JSON list of updates
--   [key index, request id, address, status, source, parts, sms parts, sender, received at].
-- Returns one JSON bulk string (it parses faster than nested arrays) [after, rows]: after, the id
-- of the stream's newest entry before this script's first XADD (null when it logged nothing or
-- the stream was empty: no other client's entry can land in between, the script being atomic),
-- so the caller knows its entries follow that one with nothing in between; rows, one per update
-- that logged an event, in the order of the updates (an empty Lua table encodes as {}):
--   [index of the update from 1, stream id, previous status or null, state].
local RANK = $rank
local UNKNOWN_RANK = $unknown_rank
local FINAL_ORDER = $final_order
local FINAL = $final
local NULL = cjson.null

local function rank(status)
  return RANK[status] or UNKNOWN_RANK
end

-- An absent count is no count: the same as zero parts delivered.
local function count(parts)
  if parts == NULL then return 0 end
  return parts
end

local function advance(state, u, outcome)
  local previous = state[1]
  if not (u[6] == NULL and state[1] == u[4]) then state[2] = u[6] end
  state[1] = u[4]
  state[6] = u[9]
  return state, outcome, previous, true, true
end

local function same_status(state, changed, stored, u)
  local incoming, kept = count(u[6]), count(stored[2])
  local final = FINAL[stored[1]] ~= nil
  if incoming > kept and not final then return advance(state, u, "applied") end
  local outcome = "duplicate"
  if incoming < kept and not final then outcome = "stale" end
  -- Final is final: a repeat with more parts updates the count without an event.
  if u[6] ~= NULL and (state[2] == NULL or state[2] < u[6]) then
    state[2] = u[6]
    changed = true
  end
  return state, outcome, stored[1], false, changed
end

local function conflict(state, changed, u)
  local previous = state[1]
  if not state[5] then
    state[5] = true
    changed = true
  end
  if FINAL_ORDER[u[4]] > FINAL_ORDER[previous] then return advance(state, u, "conflict") end
  return state, "conflict", previous, false, changed
end

local function merge(stored, u)
  if stored == nil then
    return {u[4], u[6], u[7], u[8], false, u[9]}, "applied", NULL, true, true
  end
  local state = {stored[1], stored[2], stored[3], stored[4], stored[5], stored[6]}
  local changed = false
  -- A stale update may still teach us the sender or part count we did not know.
  if state[4] == NULL and u[8] ~= NULL then
    state[4] = u[8]
    changed = true
  end
  if state[3] == NULL and u[7] ~= NULL then
    state[3] = u[7]
    changed = true
  end
  if stored[1] == u[4] then return same_status(state, changed, stored, u) end
  if FINAL_ORDER[stored[1]] and FINAL_ORDER[u[4]] then return conflict(state, changed, u) end
  if rank(u[4]) > rank(stored[1]) then return advance(state, u, "applied") end
  -- Lower, or an unknown status meeting another one: the first unknown stays.
  return state, "stale", stored[1], false, changed
end

local function wrong_type()
  local kind = redis.call("TYPE", KEYS[1]).ok
  if kind ~= "none" and kind ~= "stream" then return KEYS[1] end
  kind = redis.call("TYPE", KEYS[2]).ok
  if kind ~= "none" and kind ~= "zset" then return KEYS[2] end
  for i = 3, #KEYS do
    kind = redis.call("TYPE", KEYS[i]).ok
    if kind ~= "none" and kind ~= "hash" then return KEYS[i] end
  end
  return nil
end

local after = nil

local function log_event(u, state, previous)
  if after == nil then
    local newest = redis.call("XREVRANGE", KEYS[1], "+", "-", "COUNT", 1)
    after = NULL
    if newest[1] then after = newest[1][1] end
  end
  local fields = {"request_id", u[2], "address", u[3], "status", state[1], "source", u[5],
                  "conflict", state[5] and "1" or "0", "at", state[6]}
  if previous ~= NULL then
    fields[#fields + 1] = "previous"
    fields[#fields + 1] = previous
  end
  if state[2] ~= NULL then
    fields[#fields + 1] = "parts_delivered"
    fields[#fields + 1] = tostring(state[2])
  end
  if state[3] ~= NULL then
    fields[#fields + 1] = "sms_parts"
    fields[#fields + 1] = tostring(state[3])
  end
  return redis.call("XADD", KEYS[1], "MAXLEN", "~", ARGV[1], "*", unpack(fields))
end

local function apply(i, u, touched, logged)
  local key = KEYS[u[1]]
  local raw = redis.call("HGET", key, u[3])
  local stored = nil
  if raw then stored = cjson.decode(raw) end
  local state, _, previous, advanced, changed = merge(stored, u)
  if changed then
    redis.call("HSET", key, u[3], cjson.encode(state))
    touched[key] = u[2]
  end
  if advanced then logged[#logged + 1] = {i, log_event(u, state, previous), previous, state} end
end

-- Check every key before the first write: a script that fails half-way keeps its writes. (Redis
-- refuses a script for lack of memory only at its first write, so that leaves nothing half-done.)
local bad = wrong_type()
if bad then return redis.error_reply("WRONGTYPE " .. bad .. " is not an opensms-async key") end
local touched, logged = {}, {}
for i, u in ipairs(cjson.decode(ARGV[3])) do
  apply(i, u, touched, logged)
end
if next(touched) then
  local retention, now = tonumber(ARGV[2]), now_ms()
  for key, request_id in pairs(touched) do keep(KEYS[2], request_id, key, retention, now) end
end
return cjson.encode({after or NULL, logged})
"""
)


def _merge_source() -> str:
    if set(_FINAL_ORDER) != set(FINAL_STATUSES):
        raise RuntimeError("_state._FINAL_ORDER and _models.FINAL_STATUSES disagree")
    return _MERGE_TEMPLATE.substitute(
        rank=lua_table({str(status): r for status, r in _RANK.items()}),
        unknown_rank=int(_UNKNOWN_RANK),
        final_order=lua_table({str(status): r for status, r in _FINAL_ORDER.items()}),
        final=lua_set(str(status) for status in FINAL_STATUSES),
    )


MERGE: Final = _merge_source()
"""Merge a batch of updates and log an event per advance (see the header of the script)."""

SCHEDULE: Final = (
    _EXPIRY
    + r"""
-- KEYS[1]: the schedule (sorted set); KEYS[2]: the request's entry (hash); KEYS[3]: the expiry
-- index. ARGV: request id, sender, tracked at, poll at, retention in ms (0: keep for good), the
-- send's traceparent ("" for none). An existing entry keeps its attempts, its earliest
-- tracked_at, its lease and its traceparent.
local entry = redis.call("HMGET", KEYS[2], "tracked_at", "leased_until")
local tracked = ARGV[3]
if entry[1] and tonumber(entry[1]) < tonumber(tracked) then tracked = entry[1] end
redis.call("HSET", KEYS[2], "sender", ARGV[2], "tracked_at", tracked, "next_poll_at", ARGV[4])
redis.call("HSETNX", KEYS[2], "attempts", "0")
if ARGV[6] and ARGV[6] ~= "" then redis.call("HSETNX", KEYS[2], "traceparent", ARGV[6]) end
local score = ARGV[4]
if entry[2] and tonumber(entry[2]) > tonumber(score) then score = entry[2] end
redis.call("ZADD", KEYS[1], score, ARGV[1])
keep(KEYS[3], ARGV[1], KEYS[2], tonumber(ARGV[5]), now_ms())
return 1
"""
)
"""Add a request to the polling schedule."""

CLAIM_DUE: Final = (
    _EXPIRY
    + r"""
-- KEYS[1]: the schedule (sorted set, score = when due, lease included); KEYS[2]: the expiry index.
-- ARGV: now, limit, lease end, retention in ms (0: keep for good), key prefix of the entries.
-- Leases the due entries (earliest first) by moving their score to the lease end; drops members
-- whose entry is gone. Returns {request id, sender, tracked at, next poll at, attempts,
-- traceparent ("" for none)} rows.
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, ARGV[2])
local claimed, clock = {}, nil
for _, request_id in ipairs(due) do
  local key = ARGV[5] .. request_id
  local e = redis.call("HMGET", key, "sender", "tracked_at", "next_poll_at", "attempts",
    "traceparent")
  if not e[1] then
    redis.call("ZREM", KEYS[1], request_id)
  else
    local score = ARGV[3]
    if tonumber(e[3]) > tonumber(score) then score = e[3] end
    redis.call("HSET", key, "leased_until", ARGV[3])
    redis.call("ZADD", KEYS[1], score, request_id)
    clock = clock or now_ms()
    keep(KEYS[2], request_id, key, tonumber(ARGV[4]), clock)
    claimed[#claimed + 1] = {request_id, e[1], e[2], e[3], e[4] or "0", e[5] or ""}
  end
end
return claimed
"""
)
"""Lease the due requests of the schedule to the caller, atomically."""

RESCHEDULE: Final = (
    _EXPIRY
    + r"""
-- KEYS[1]: the schedule; KEYS[2]: the request's entry; KEYS[3]: the expiry index. ARGV: request
-- id, next poll at, attempts, retention in ms (0: keep for good). Releases the lease; a request no
-- longer scheduled stays unscheduled.
if redis.call("EXISTS", KEYS[2]) == 0 then
  redis.call("ZREM", KEYS[1], ARGV[1])
  return 0
end
redis.call("HSET", KEYS[2], "next_poll_at", ARGV[2], "attempts", ARGV[3])
redis.call("HDEL", KEYS[2], "leased_until")
redis.call("ZADD", KEYS[1], ARGV[2], ARGV[1])
keep(KEYS[3], ARGV[1], KEYS[2], tonumber(ARGV[4]), now_ms())
return 1
"""
)
"""Set a request's next poll time and attempts, releasing its lease."""

UNSCHEDULE: Final = r"""
-- KEYS[1]: the schedule; KEYS[2]: the request's entry. ARGV: request id.
redis.call("ZREM", KEYS[1], ARGV[1])
return redis.call("DEL", KEYS[2])
"""
"""Remove a request from the polling schedule."""

PURGE: Final = (
    _EXPIRY
    + r"""
-- KEYS[1]: the expiry index; KEYS[2]: the schedule. ARGV: most requests to delete, key prefix of
-- the states, key prefix of the schedule entries. Deletes the keys of the requests whose expiry
-- is due (earliest first) and returns how many. DEL and ZREM free memory: Redis runs them even
-- when it is full.
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now_ms(), "LIMIT", 0, ARGV[1])
for _, request_id in ipairs(due) do
  redis.call("DEL", ARGV[2] .. request_id, ARGV[3] .. request_id)
  redis.call("ZREM", KEYS[2], request_id)
end
if #due > 0 then redis.call("ZREM", KEYS[1], unpack(due)) end
return #due
"""
)
"""Delete the requests whose ``retention`` ran out since their last write."""

MIGRATE: Final = (
    _EXPIRY
    + r"""
-- KEYS[1]: the expiry index; KEYS[2..]: keys of requests; ARGV[i]: the request id of KEYS[i + 1].
-- A key that still has the TTL an earlier version set loses it, and its request expires when the
-- TTL would have ended (or later, if another of its keys says so). Returns how many moved.
local now, moved = now_ms(), 0
for i = 2, #KEYS do
  local left = redis.call("PTTL", KEYS[i])
  if left > 0 then
    local due = now + left
    local score = redis.call("ZSCORE", KEYS[1], ARGV[i - 1])
    redis.call("PERSIST", KEYS[i])
    if not score or tonumber(score) < due then redis.call("ZADD", KEYS[1], due, ARGV[i - 1]) end
    moved = moved + 1
  end
end
return moved
"""
)
"""Move the TTLs of keys an earlier version wrote into the expiry index."""
