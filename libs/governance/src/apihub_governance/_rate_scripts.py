"""The gatekeeper's Lua scripts and the Redis keys they touch.

Every decision runs inside Redis, on the server's clock (``TIME``), in one script call, so a
fleet of processes on machines with different clocks sees one budget. ``redis.replicate_commands()``
comes first so Redis 6.2 replicates the script's effects rather than the script (it reads
``TIME``, which is not deterministic); from Redis 7 it is the default and a no-op.

Keys of one bucket (``<prefix>{<bucket name>}:<suffix>``; the braces keep a bucket in one cluster
slot):

===========  ======  =============================================================================
suffix       type    holds
===========  ======  =============================================================================
``g``        zset    grants: member = unique grant id, score = server ms of the grant
``q``        zset    waiters: member = ``<gatekeeper member>#<lane>``, score = rank (lower first)
``qi``       hash    waiter → ``"<expires at, server ms> <cost>"`` (the heartbeat)
``m``        hash    gatekeeper member → ``"<margin ms> <reported at, server ms>"``
``p``        string  ``"<penalty ms> <set at, server ms>"``, decaying linearly
===========  ======  =============================================================================
"""

from __future__ import annotations

from typing import Final

from ._buckets import Bucket

KEY_SUFFIXES: Final = ("g", "q", "qi", "m", "p")
"""Per-bucket keys, in the order the acquire script expects them."""


def bucket_keys(prefix: str, bucket: Bucket) -> list[str]:
    """The five keys of ``bucket`` (see the module docstring), in :data:`KEY_SUFFIXES` order."""
    return [f"{prefix}{{{bucket.name}}}:{suffix}" for suffix in KEY_SUFFIXES]


ACQUIRE_LUA: Final = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function f(x) return string.format('%.17g', x) end

local member = ARGV[1]
local grant_prefix = ARGV[2]
local cost = tonumber(ARGV[3])
local rank = now - tonumber(ARGV[4]) + tonumber(ARGV[5])
local next_waited = tonumber(ARGV[6])
local next_rank = now - next_waited + tonumber(ARGV[7])
local next_cost = ARGV[8]
local reporter = ARGV[9]
local report_ttl = tonumber(ARGV[10])
local waiter_ttl = tonumber(ARGV[11])
local decay = tonumber(ARGV[12])
local keep = tonumber(ARGV[13])
local nb = tonumber(ARGV[14])
local pacing = tonumber(ARGV[15])
-- A batch: the lane asks for up to `want` grants at once, for its head and the local waiters
-- behind it (waited ms and offset of each from ARGV[18]); grants after the first must fit their
-- windows now and be due (pacing) within `slack` ms.
local want = tonumber(ARGV[16])
local slack = tonumber(ARGV[17])
local followers = {}
for j = 2, want do
  followers[j] = {tonumber(ARGV[18 + 2 * (j - 2)]), tonumber(ARGV[19 + 2 * (j - 2)])}
end

local pos = 18 + 2 * (want - 1)
local room = want
local wait, reason, blocked, in_force = 0, '', 0, 0
local seen = {}
for i = 1, nb do
  local g, q, qi, m, p = KEYS[5*i-4], KEYS[5*i-3], KEYS[5*i-2], KEYS[5*i-1], KEYS[5*i]
  local own, nw = tonumber(ARGV[pos]), tonumber(ARGV[pos+1])
  pos = pos + 2

  -- The margin in force: the widest fresh report of any member (ours included), so the whole
  -- fleet spaces for the worst jitter anyone sees; stale reports (a dead or idle member) go.
  redis.call('HSET', m, reporter, f(own) .. ' ' .. f(now))
  redis.call('PEXPIRE', m, report_ttl)
  local margin = 0
  local reports = redis.call('HGETALL', m)
  for j = 1, #reports, 2 do
    if reports[j] == '~tat' then
      -- Not a report: the pacing schedule (below).
    else
    local v, at = string.match(reports[j+1], '^(%S+) (%S+)$')
    v, at = tonumber(v), tonumber(at)
    if v == nil or at == nil or now - at > report_ttl then
      redis.call('HDEL', m, reports[j])
    elseif v > margin then
      margin = v
    end
    end
  end

  -- The penalty of an upstream rate error, decaying linearly to 0.
  local penalty = 0
  local pv = redis.call('GET', p)
  if pv and decay > 0 then
    local amount, at = string.match(pv, '^(%S+) (%S+)$')
    if amount and at then
      penalty = tonumber(amount) * (1 - (now - tonumber(at)) / decay)
      if penalty < 0 then penalty = 0 end
    end
  end

  -- Live waiters of other lanes (any process) that rank better keep their slots; dead ones
  -- (no heartbeat within the waiter TTL) are removed here. Only a lane with nobody ranked
  -- before its last batch member may take more than one grant.
  local better = 0
  if want > 1 then
    local last = now - followers[want][1] + followers[want][2]
    local others = redis.call('ZCOUNT', q, '-inf', '(' .. f(last))
    local own = redis.call('ZSCORE', q, member)
    if own and tonumber(own) < last then others = others - 1 end
    if others > 0 then room = 1 end
  end
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', q, '-inf', '(' .. f(rank))) do
    if other ~= member then
      local info = redis.call('HGET', qi, other)
      local expires, c = nil, nil
      if info then expires, c = string.match(info, '^(%S+) (%S+)$') end
      if expires == nil or tonumber(expires) <= now then
        redis.call('ZREM', q, other)
        redis.call('HDEL', qi, other)
      else
        better = better + tonumber(c)
      end
    end
  end

  local widest = 0
  local pace = 0
  local due = nil
  if pacing > 0 then
    due = tonumber(redis.call('HGET', m, '~tat'))
  end
  for j = 1, nw do
    local limit, win = tonumber(ARGV[pos]), tonumber(ARGV[pos+1])
    pos = pos + 2
    if win > widest then widest = win end
    local eff = win + margin + penalty
    if win < 60000 and pacing * eff * cost / limit > pace then
      pace = pacing * eff * cost / limit
    end
    local lo = '(' .. f(now - eff)
    local count = redis.call('ZCOUNT', g, lo, '+inf')
    local need = cost + better
    if count + need <= limit then
      local fits = math.floor((limit - count - better) / cost)
      if fits < room then room = fits end
    end
    if count + need > limit then
      -- Wait until enough grants leave the window for us and everyone ranked before us.
      local leave = count + need - limit
      if leave > count then leave = count end
      local w = 0
      if leave > 0 then
        local oldest = redis.call('ZRANGEBYSCORE', g, lo, '+inf',
                                  'WITHSCORES', 'LIMIT', leave - 1, 1)
        w = tonumber(oldest[2]) + eff - now
      end
      if w <= 0 then w = eff / limit end
      local why
      if count + cost <= limit then
        why = 'priority'
      elseif penalty > 0
          and redis.call('ZCOUNT', g, '(' .. f(now - win - margin), '+inf') + cost <= limit then
        why = 'backoff'
      elseif win >= 60000 then
        why = 'per_minute'
      else
        why = 'per_second'
      end
      if w > wait then wait, reason, blocked = w, why, i end
    elseif due ~= nil and win < 60000 then
      -- Pacing: grants of a sub-minute window are spread evenly instead of leaving in a burst
      -- when the window rolls over. A burst is served by the broker (and by our own processes)
      -- one after another, and that queueing is jitter the margin would have to cover. The
      -- schedule ('~tat', the earliest time of the next grant) advances by one interval per
      -- grant, so a grant that comes a little late does not delay all that follow.
      local interval = pacing * eff / limit
      local gap = due - now
      if better > 0 then
        -- The next paced slots belong to the better-ranked waiters, one interval each.
        local w = math.max(gap, 0) + interval * better
        if w > wait then wait, reason, blocked = w, 'priority', i end
      elseif gap > 0 and gap > wait then
        wait, reason, blocked = gap, 'per_second', i
      end
    end
  end
  if margin + penalty > in_force then in_force = margin + penalty end
  seen[i] = {g, q, qi, widest, pace, m, due}
end

if wait > 0 then
  for i = 1, nb do
    local b = seen[i]
    redis.call('ZADD', b[2], rank, member)
    redis.call('HSET', b[3], member, f(now + waiter_ttl) .. ' ' .. cost)
    redis.call('PEXPIRE', b[2], waiter_ttl * 2)
    redis.call('PEXPIRE', b[3], waiter_ttl * 2)
  end
  return {0, f(now), f(wait), reason, blocked, f(in_force)}
end

-- How many of the wanted grants go out now: as many as every window has room for and, with
-- pacing, as many as are due within the slack.
local granted = math.max(1, math.min(want, room))
local tats = {}
for i = 1, nb do
  local b = seen[i]
  if pacing > 0 and b[5] > 0 then
    -- Late by less than half an interval: keep the schedule; later (idle): restart it.
    local tat = now + b[5]
    if b[7] ~= nil and b[7] >= now - b[5] / 2 then tat = b[7] + b[5] end
    tats[i] = tat
    local due = 1 + math.floor((now + slack - tat) / b[5]) + 1
    if tat > now + slack then due = 1 end
    if due < granted then granted = due end
  end
end
local next_gap = 0
for i = 1, nb do
  local b = seen[i]
  if tats[i] ~= nil then
    local tat = tats[i] + (granted - 1) * b[5]
    redis.call('HSET', b[6], '~tat', f(tat))
    if tat - now > next_gap then next_gap = tat - now end
  end
  for j = 1, granted do
    for c = 1, cost do
      redis.call('ZADD', b[1], now, grant_prefix .. ':' .. j .. ':' .. c)
    end
  end
  redis.call('ZREMRANGEBYSCORE', b[1], '-inf', '(' .. f(now - b[4] - keep))
  redis.call('PEXPIRE', b[1], math.ceil(b[4] + keep))
  if granted < want then
    -- The first waiter of the batch left without a grant keeps the lane's place.
    local w = followers[granted + 1]
    redis.call('ZADD', b[2], now - w[1] + w[2], member)
    redis.call('HSET', b[3], member, f(now + waiter_ttl) .. ' ' .. cost)
    redis.call('PEXPIRE', b[2], waiter_ttl * 2)
    redis.call('PEXPIRE', b[3], waiter_ttl * 2)
  elseif next_waited >= 0 then
    -- The lane's next local head keeps the lane's place in the fleet-wide queue.
    redis.call('ZADD', b[2], next_rank, member)
    redis.call('HSET', b[3], member, f(now + waiter_ttl) .. ' ' .. next_cost)
    redis.call('PEXPIRE', b[2], waiter_ttl * 2)
    redis.call('PEXPIRE', b[3], waiter_ttl * 2)
  else
    redis.call('ZREM', b[2], member)
    redis.call('HDEL', b[3], member)
  end
end
-- On a grant, wait_ms says when the next grant can come at the earliest (pacing), so the next
-- head sleeps until then instead of asking only to be told to wait.
return {1, f(now), f(next_gap), '', 0, f(in_force), granted}
"""
"""One permit decision. KEYS: :func:`bucket_keys` of each bucket, concatenated. ARGV: waiter id,
grant id prefix, cost, waited ms, priority offset ms, the next local head's waited ms (``-1``:
none), offset and cost, reporter (gatekeeper member), margin report TTL ms, waiter TTL ms,
penalty decay ms, grant retention beyond the widest window ms, bucket count, pacing factor,
grants wanted (the batch: the head and the local waiters behind it), batch slack ms, then
``waited_ms offset_ms`` of every batch member after the head; then per bucket: own margin ms,
window count, and ``limit window_ms`` per window.

Returns ``{granted, now, wait_ms, reason, blocked bucket (1-based), margin in force[, grant
count]}``; on a grant the members are ``<grant id>:<j>:<c>`` for the j-th grant of the batch.
Numbers travel as strings because Redis truncates Lua numbers to integers."""

PENALTY_LUA: Final = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function f(x) return string.format('%.17g', x) end
local add, decay, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {f(now)}
for i = 1, #KEYS do
  local current = 0
  local pv = redis.call('GET', KEYS[i])
  if pv then
    local amount, at = string.match(pv, '^(%S+) (%S+)$')
    if amount and at then
      current = tonumber(amount) * (1 - (now - tonumber(at)) / decay)
      if current < 0 then current = 0 end
    end
  end
  local new = current + add
  if new > cap then new = cap end
  redis.call('SET', KEYS[i], f(new) .. ' ' .. f(now), 'PX', math.ceil(decay))
  out[i + 1] = f(new)
end
return out
"""
"""Add a penalty to each bucket's ``p`` key (KEYS): what is left of the old one plus
ARGV[1] ms, capped at ARGV[3] ms, decaying over ARGV[2] ms from now. Returns
``{now, new penalty per key}``."""
