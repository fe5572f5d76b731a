-- Error shape for errors returned by the backend, and the request checks at the end of this file
-- (changes need a JSON body and an Authorization header; query parameters must not repeat the path).
--
-- The grpc_json_transcoder (convert_grpc_status: true) turns a gRPC error into an HTTP status and a
-- google.rpc.Status JSON body: {"code":5,"message":"任务 9 不存在","details":[]}. The API's error
-- shape is {"detail": "<message>", "reason": "<REASON>"}; this filter rewrites the body into
-- {"detail":"任务 9 不存在","reason":"TASK_NOT_FOUND","grpc_code":5}. Errors Envoy makes itself are shaped by local_reply_config.
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
  -- The machine-readable reason: the google.rpc.ErrorInfo in the details (services always send
  -- one; a status without one, e.g. from a transport failure, gets the generic INTERNAL).
  local reason = string.match(body, '"reason":"([A-Z0-9_]+)"', close + 1) or "INTERNAL"
  return '{"detail":"' .. message .. '","reason":"' .. reason .. '","grpc_code":' .. code .. '}', tonumber(code)
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

-- Refuses the request with `status` and `message`; the local reply mapper of envoy.yaml.tmpl shapes
-- it into {"detail": message, "reason": reason}.
local function refuse(handle, status, reason, message)
  handle:streamInfo():dynamicMetadata():set("zquant", "reason", reason)
  handle:respond({ [":status"] = status }, message)
end

-- Cross-site request forgery: a page of another site can make the browser send a form or text/plain
-- POST (no preflight), and the access_token cookie would have gone with it. So a change (any method
-- but GET/HEAD/OPTIONS) must carry a JSON body or none, and its token in the Authorization header,
-- which no other site can set; the cookie (HttpOnly, SameSite=Strict) only reads and watches.
-- Native gRPC (application/grpc) is no browser request. Login and refresh carry no token yet.
local READS = { GET = true, HEAD = true, OPTIONS = true }
local TOKENLESS = { ["/api/v1/auth/login"] = true, ["/api/v1/auth/refresh"] = true }

-- Returns true when the request was refused.
local function guard_change(handle, headers, route)
  if READS[headers:get(":method") or ""] then
    return false
  end
  local content_type = string.lower(headers:get("content-type") or "")
  if string.find(content_type, "application/grpc", 1, true) == 1 then
    return false
  end
  local json = content_type == "application/json" or string.find(content_type, "application/json;", 1, true) == 1
  local has_body = (tonumber(headers:get("content-length") or "0") or 1) > 0
    or headers:get("transfer-encoding") ~= nil
  if not json and (content_type ~= "" or has_body) then
    refuse(handle, "415", "CONTENT_TYPE_UNSUPPORTED", "请求体须为 JSON（Content-Type: application/json）")
    return true
  end
  if not TOKENLESS[route] and headers:get("authorization") == nil then
    refuse(handle, "403", "AUTHORIZATION_HEADER_REQUIRED", "修改操作须在 Authorization 请求头中携带令牌")
    return true
  end
  return false
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local path = headers:get(":path") or ""
  local mark = string.find(path, "?", 1, true)
  local route = mark and string.sub(path, 1, mark - 1) or path
  if guard_change(request_handle, headers, route) or mark == nil then
    return
  end
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
