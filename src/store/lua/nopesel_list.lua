-- KEYS: the index to list (all or open), open, requests. ARGV: upper bound
-- ('+inf' or '(N'), limit. Newest first, one more than the limit so the caller
-- knows whether there is a next page. Returns position, JSON, handled (0/1) triples.
local refs = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[2]) + 1)
local out = {}
for i = 1, #refs, 2 do
  out[#out + 1] = refs[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[3], refs[i]) or ''
  if redis.call('ZSCORE', KEYS[2], refs[i]) then out[#out + 1] = '0' else out[#out + 1] = '1' end
end
return out
