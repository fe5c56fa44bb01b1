"""The Lua scripts of the Redis inbound store: dedupe, the reassembly step and the log append in
one atomic call, and the expiry of groups and ids.

The reassembly step is the twin of :func:`opensms_async._reassembly.add_part` and
:func:`~opensms_async._reassembly.expire`, written out in Lua (``tests/test_inbound_redis.py``
replays random arrivals through both and compares what they log). Python checks and encodes
every argument first (``redis.py``): a script that fails half-way keeps the writes it made.

Keys: ``KEYS[1]`` the ids seen (a sorted set scored by when each may be forgotten), ``KEYS[2]``
the log (a stream, one field ``m`` per entry: the JSON array of ``_inbound_message.encode``),
``KEYS[3]`` the groups (a hash: the group key's JSON -> ``{"o": opened_at, "p": {"<number>":
[id, text, source, date_time]}}``), ``KEYS[4]`` the groups' windows (a sorted set of group keys
scored by ``opened_at``). Times travel as the decimal text Python made of its floats and are
kept as such, so a message's ``received_at`` reads back as the same float.
"""

from __future__ import annotations

from typing import Final

__all__ = ["EXPIRE", "RECEIVE"]

_COMMON: Final = r"""
local seen, log, groups, windows = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local function append(message, maxlen)
  local raw = cjson.encode(message)
  local id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'm', raw)
  return {id, raw}
end

-- The parts a group holds as one message, in part order (_reassembly.join).
local function join(group, key)
  local total = key[4]
  local ids, texts, first, count = {}, {}, nil, 0
  for n = 1, total do
    local p = group.p[tostring(n)]
    if p then
      count = count + 1
      ids[count] = p[1]
      texts[count] = p[2]
      if first == nil then first = p end
    end
  end
  return {first[1], key[1], key[2], table.concat(texts), group.o, count, total,
          count == total, ids, first[3], first[4]}
end

local function held(group)
  local count = 0
  for _ in pairs(group.p) do count = count + 1 end
  return count
end
"""

RECEIVE: Final = (
    _COMMON
    + r"""
-- ARGV: now (text), timeout, forget_at, maxlen, the parts as JSON: each
-- [id, sender, destination, text, group key JSON or '', number, total, source, date_time].
-- Returns JSON: per part 0 (a duplicate) or the entries it logged, each [cursor, message].
local now_text, now, timeout = ARGV[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local forget_at, maxlen = ARGV[3], ARGV[4]
local out = {}
for i, part in ipairs(cjson.decode(ARGV[5])) do
  local mid = part[1]
  if redis.call('ZADD', seen, 'NX', forget_at, mid) == 0 then
    out[i] = 0
  else
    local logged = {}
    local keytext = part[5]
    if keytext == '' then
      logged[1] = append({mid, part[2], part[3], part[4], now_text, 1, 1, true, {mid},
                          part[8], part[9]}, maxlen)
    else
      local key = cjson.decode(keytext)
      local raw = redis.call('HGET', groups, keytext)
      local group = nil
      if raw then group = cjson.decode(raw) end
      local number = tostring(part[6])
      if group and (now >= tonumber(group.o) + timeout or group.p[number]) then
        logged[#logged + 1] = append(join(group, key), maxlen)  -- its window ended, or a
        group = nil                                             -- new message begins
      end
      if group == nil then group = {o = now_text, p = {}} end
      group.p[number] = {mid, part[4], part[8], part[9]}
      if held(group) == key[4] then
        logged[#logged + 1] = append(join(group, key), maxlen)
        redis.call('HDEL', groups, keytext)
        redis.call('ZREM', windows, keytext)
      else
        redis.call('HSET', groups, keytext, cjson.encode(group))
        redis.call('ZADD', windows, group.o, keytext)
      end
    end
    out[i] = logged
  end
end
return cjson.encode(out)
"""
)

EXPIRE: Final = (
    _COMMON
    + r"""
-- ARGV: now (text), timeout, limit, maxlen. Logs the groups whose window has ended (at most
-- limit), forgets at most limit ids whose time has come; returns JSON: [[cursor, message]...].
local now_text, now, timeout = ARGV[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local limit, maxlen = tonumber(ARGV[3]), ARGV[4]
local out = {}
local due = redis.call('ZRANGEBYSCORE', windows, '-inf', now - timeout, 'LIMIT', 0, limit)
for _, keytext in ipairs(due) do
  local raw = redis.call('HGET', groups, keytext)
  if not raw then
    redis.call('ZREM', windows, keytext)
  else
    local group = cjson.decode(raw)
    if now >= tonumber(group.o) + timeout then
      out[#out + 1] = append(join(group, cjson.decode(keytext)), maxlen)
      redis.call('HDEL', groups, keytext)
      redis.call('ZREM', windows, keytext)
    end
  end
end
local gone = redis.call('ZCOUNT', seen, '-inf', now_text)
if gone > 0 then
  redis.call('ZREMRANGEBYRANK', seen, 0, math.min(gone, limit) - 1)
end
if #out == 0 then return '[]' end
return cjson.encode(out)
"""
)
