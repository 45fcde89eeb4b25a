-- A function of the scripts below: whether token `jti` may be redeemed in
-- a session whose HMGET of state, jti, prev, prev_at... is `h`: `nil` no,
-- `false` it is the current token, `true` the one redeemed last, within
-- `grace` ms.
local function redeemable(h, jti, grace, now)
  if h[2] == jti then return false end
  if grace > 0 and h[3] and h[3] == jti and h[4] and now - tonumber(h[4]) < grace then
    return true
  end
  return nil
end
