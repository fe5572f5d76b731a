-- Error shape for errors returned by the backend.
--
-- The grpc_json_transcoder (convert_grpc_status: true) turns a gRPC error into an HTTP status and a
-- google.rpc.Status JSON body: {"code":5,"message":"任务 9 不存在","details":[]}. The API's error
-- shape is {"detail": "<message>"}; this filter rewrites the body into
-- {"detail":"任务 9 不存在","grpc_code":5}. Errors Envoy makes itself are shaped by local_reply_config.
--
-- Sits above the transcoder in the filter list, so it sees responses after the transcoder. Only
-- error responses (status >= 400, application/json) are buffered; 2xx, text/event-stream and native
-- gRPC (application/grpc) responses pass untouched and unbuffered.

-- Returns the index of the closing quote of the JSON string whose opening quote is at `open`,
-- or nil when the string is not terminated.
local function string_end(s, open)
  local i = open + 1
  local n = #s
  while i <= n do
    local c = string.byte(s, i)
    if c == 92 then         -- backslash: skip the escaped character (\" \\ \uXXXX ...)
      i = i + 2
    elseif c == 34 then     -- closing quote
      return i
    else
      i = i + 1
    end
  end
  return nil
end

-- Returns the rewritten body and the gRPC code, or nil when `body` is not a google.rpc.Status object
-- as printed by the transcoder (add_whitespace: false).
local function reshape(body)
  local code = string.match(body, '^{"code":(%-?%d+),')
  if code == nil then
    return nil
  end
  local key_start, key_end = string.find(body, ',"message":"', 1, true)
  if key_start == nil then
    return nil
  end
  local open = key_end           -- the message's opening quote
  local close = string_end(body, open)
  if close == nil then
    return nil
  end
  -- The message is copied still JSON-escaped, so the result stays valid JSON (unicode intact).
  local message = string.sub(body, open + 1, close - 1)
  return '{"detail":"' .. message .. '","grpc_code":' .. code .. '}', tonumber(code)
end

function envoy_on_response(response_handle)
  local headers = response_handle:headers()
  local content_type = string.lower(headers:get("content-type") or "")
  if string.find(content_type, "application/grpc", 1, true) == 1 then
    return                       -- native gRPC: never touch (its clients need the grpc-* headers)
  end
  headers:remove("grpc-accept-encoding")   -- cosmetic: meaningless to REST and SSE clients
  local status = tonumber(headers:get(":status"))
  if status == nil or status < 400 then
    return                       -- success and SSE streams: never buffered
  end
  if string.find(content_type, "application/json", 1, true) ~= 1 then
    return                       -- text/event-stream, html, ...: leave alone
  end
  local body = response_handle:body()   -- buffers the (small) error body
  if body == nil then
    return
  end
  local length = body:length()
  if length == 0 or length > 65536 then
    return
  end
  local new_body, code = reshape(body:getBytes(0, length))
  if new_body == nil then
    return
  end
  body:setBytes(new_body)
  -- Handles taken before body() are invalid once it has waited for the body: fetch them again.
  response_handle:headers():replace("content-length", tostring(#new_body))
  -- For the access log: the transcoder has already dropped grpc-status, so %GRPC_STATUS% would
  -- only be derived from the HTTP status (404 -> 12). Keep the backend's real code.
  response_handle:streamInfo():dynamicMetadata():set("zquant", "grpc_code", code)
end

-- Query parameters that repeat a field bound by the path. The transcoder lets the query win, so
-- GET /tasks/1?task_id=2 would answer (and DELETE would remove) task 2: such requests are refused.
local PATH_BOUND = {
  { "^/api/v1/scheduler/tasks/[^/]+", { "task_id", "taskId" } },
  { "^/api/v1/scheduler/tasks/[^/]+/executions/[^/]+", { "execution_id", "executionId" } },
  { "^/api/v1/scheduler/executions/[^/]+", { "execution_id", "executionId" } },
  { "^/api/v1/auth/users/[^/]+", { "username" } },
}

local function percent_decode(s)
  return (string.gsub(s, "%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

function envoy_on_request(request_handle)
  local path = request_handle:headers():get(":path") or ""
  local mark = string.find(path, "?", 1, true)
  if mark == nil then
    return
  end
  local route = string.sub(path, 1, mark - 1)
  local query = "&" .. percent_decode(string.sub(path, mark + 1)) .. "&"
  for _, rule in ipairs(PATH_BOUND) do
    if string.find(route, rule[1]) then
      for _, name in ipairs(rule[2]) do
        if string.find(query, "&" .. name .. "=", 1, true) or string.find(query, "&" .. name .. "&", 1, true) then
          request_handle:respond({ [":status"] = "400" }, "查询参数 " .. name .. " 与路径中的值重复，请只在路径中指定")
          return
        end
      end
    end
  end
end
