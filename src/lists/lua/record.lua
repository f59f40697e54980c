-- Shared by the list scripts (prepended to each): how a subscriber record is taken apart and
-- put together. A record is the fields address, name, locale, attributes JSON, status, created,
-- updated and memberships joined by the unit separator (\31), which the caller keeps out of
-- every field, so nothing here parses JSON. Memberships are the subscriber's subscriptions as
-- `{list id}{status code}` joined by commas (`1c,7x`): a copy of the states the members hashes
-- hold, kept in the record so that a segment reads one value per subscriber.
local US = '\31'

-- The record's fields; memberships are '' when the record has none.
local function split(s)
  local out, i = {}, 1
  while true do
    local j = string.find(s, US, i, true)
    if not j then
      out[#out + 1] = string.sub(s, i)
      break
    end
    out[#out + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
  if out[8] == nil then out[8] = '' end
  return out
end

local function join(f)
  return table.concat(f, US, 1, 8)
end

-- Memberships `ms` with list `list` set to status `code` ('' drops it).
local function with_membership(ms, list, code)
  if ms == '' then
    if code == '' then return '' end
    return list .. code
  end
  local out, found = {}, false
  for e in string.gmatch(ms, '[^,]+') do
    if string.sub(e, 1, -2) == list then
      found = true
      if code ~= '' then out[#out + 1] = list .. code end
    else
      out[#out + 1] = e
    end
  end
  if not found and code ~= '' then out[#out + 1] = list .. code end
  return table.concat(out, ',')
end

-- The key of the record bucket holding subscriber `id` (ids per bucket: `span`).
local function bucket_key(prefix, span, id)
  return prefix .. math.floor(tonumber(id) / span)
end
