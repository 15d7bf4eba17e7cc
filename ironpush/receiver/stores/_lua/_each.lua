-- The calls of one batch (concurrent calls of one process; a call alone is a batch of one), in
-- order, each as if it ran alone: call(i) answers call i. A call's own error answers
-- {'err', message} (what it wrote before stays, as for a call on its own); the others go on.
local function each(count, call)
  local answers = {}
  for i = 1, count do
    local ok, answer = pcall(call, i)
    if ok then
      answers[i] = answer
    else -- a string (Redis 7.0 turns a failed redis.call into one), or a table {err = ...}
      answers[i] = {'err', type(answer) == 'table' and answer.err or tostring(answer)}
    end
  end
  return answers
end

