// Request and response types of the REST API, mirroring docs/contract.md and the
// protos (zquant/scheduler/v1). JSON is snake_case; times are RFC 3339 UTC strings; every scalar field
// is printed (also zero values) while unset message fields (timestamps) are omitted.

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export type Role = 'admin' | 'operator' | 'viewer';
export type TaskType =
  | 'example_task'
  | 'manual_task'
  | 'common_task'
  | 'workflow'
  | 'data_sync_stock_list'
  | 'data_sync_trading_calendar'
  | 'data_sync_daily_data'
  | 'data_sync_all_daily_data';
export type ConcurrencyPolicy = 'forbid' | 'allow' | 'replace';
export type ExecutionStatus = 'pending' | 'running' | 'success' | 'failed' | 'terminated' | 'skipped';
export type ExecutionTrigger = 'schedule' | 'manual' | 'retry' | 'workflow' | 'backfill';
export type SortOrder = 'asc' | 'desc';
/** Columns GET /tasks accepts in `order_by`. */
export type TaskOrderBy =
  'id' | 'name' | 'task_type' | 'enabled' | 'paused' | 'max_retries' | 'created_at' | 'updated_at';

/** Body of every non-2xx response. */
export interface ErrorBody {
  detail: string;
}

// ---- auth ----------------------------------------------------------------------------------------

export interface LoginRequest {
  username: string;
  password: string;
}

/** POST /api/v1/auth/login and /refresh. */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
}

/** GET /api/v1/auth/me. */
export interface CurrentUser {
  username: string;
  role: Role;
}

/** One account of GET /api/v1/auth/users (admin). */
export interface User {
  username: string;
  role: Role;
  disabled: boolean;
  created_at?: string | null;
  /** While logins from some address are locked out after failed attempts: when the last lock ends. */
  locked_until?: string | null;
}

/** POST /api/v1/auth/users/{username}/unlock. */
export interface UnlockResponse {
  message: string;
  /** How many (username, address) lockouts and failure counts were cleared. */
  cleared: number;
}

export interface UserList {
  users: User[];
}

export interface UserCreate {
  username: string;
  password: string;
  role: Role;
}

/** PUT /api/v1/auth/users/{username}: only the fields present change. */
export interface UserUpdate {
  password?: string;
  role?: Role;
  disabled?: boolean;
}

// ---- tasks ---------------------------------------------------------------------------------------

export interface Task {
  id: number;
  name: string;
  task_type: TaskType;
  /** "" when the task has no cron schedule. */
  cron_expression: string;
  /** 0 when the task has no interval schedule. */
  interval_seconds: number;
  /** One-time run instant; absent when not a one-time task. */
  run_at?: string | null;
  timezone: string;
  enabled: boolean;
  paused: boolean;
  description: string;
  config: JsonObject;
  max_retries: number;
  retry_interval: number;
  /** 0 = no limit. */
  timeout_seconds: number;
  concurrency_policy: ConcurrencyPolicy;
  misfire_policy?: string;
  misfire_grace_seconds?: number;
  /** Trading calendar of a cron schedule ("" = every day). */
  calendar?: string;
  /** 0: sessions only; +N / -N: the N-th session on or after / before the cron's date. */
  calendar_shift?: number;
  calendar_holidays?: HolidayPolicy;
  created_at?: string | null;
  updated_at?: string | null;
  created_by?: string;
  updated_by?: string;
  next_run_time?: string | null;
  /** disabled | paused | running | pending | success | failed | manual | finished. */
  schedule_status?: string;
  latest_execution_time?: string | null;
  /** "" when the task never ran. */
  latest_execution_status?: ExecutionStatus | '';
  /** Labels, in the order given; [] when none. */
  tags?: string[];
}

/** One node of GET /tasks/{id}/workflow: the task plus its dependencies inside the workflow. */
export interface WorkflowNode extends Task {
  dependencies: number[];
  /** Display name from the workflow config. */
  node_name?: string;
}

export interface WorkflowNodes {
  tasks: WorkflowNode[];
}

/** POST /tasks. Schedule: at most one of cron_expression / interval_seconds / run_at. */
export interface TaskCreate {
  name: string;
  task_type: TaskType;
  cron_expression?: string;
  interval_seconds?: number;
  run_at?: string;
  timezone?: string;
  enabled?: boolean;
  description?: string;
  config?: JsonObject;
  max_retries?: number;
  retry_interval?: number;
  timeout_seconds?: number;
  concurrency_policy?: ConcurrencyPolicy;
  calendar?: string;
  calendar_shift?: number;
  calendar_holidays?: HolidayPolicy;
  tags?: string[];
}

/**
 * PUT /tasks/{id}: only the fields present change; `null` clears cron_expression, interval_seconds,
 * run_at, description and timeout_seconds. task_type and enabled cannot be changed here.
 */
export interface TaskUpdate {
  name?: string;
  cron_expression?: string | null;
  interval_seconds?: number | null;
  run_at?: string | null;
  timezone?: string;
  description?: string | null;
  config?: JsonObject;
  max_retries?: number;
  retry_interval?: number;
  timeout_seconds?: number | null;
  concurrency_policy?: ConcurrencyPolicy;
  calendar?: string | null;
  calendar_shift?: number;
  calendar_holidays?: HolidayPolicy;
  /** Replaces the tags; [] or null removes them. */
  tags?: string[] | null;
}

/** Query of GET /tasks. */
export interface TaskListQuery {
  skip: number;
  limit: number;
  task_type?: TaskType;
  enabled?: boolean;
  name?: string;
  order_by?: TaskOrderBy;
  order?: SortOrder;
  /** Also list tasks referenced by workflows (hidden by default). */
  include_children?: boolean;
  /** Only tasks carrying this tag (exact match). */
  tag?: string;
}

export interface TaskList {
  tasks: Task[];
  /** All matches, not just this page. */
  total: number;
}

export interface TriggerResponse {
  message: string;
  execution_id: number;
  /** False while no scheduler leads: the run is recorded and waits until one is back. */
  scheduler_up?: boolean;
}

export interface DeleteResponse {
  message?: string;
}

// ---- executions ----------------------------------------------------------------------------------

/** The guide's progress structure, merged with the executor's final result. */
export interface ExecutionResult {
  [key: string]: JsonValue | undefined;
  current_step?: number;
  total_steps?: number;
  progress_percent?: number;
  status?: string;
  message?: string;
}

export interface Execution {
  id: number;
  task_id: number;
  /** 0 unless this is a workflow node run. */
  parent_execution_id: number;
  status: ExecutionStatus;
  trigger: ExecutionTrigger;
  scheduled_time?: string | null;
  start_time?: string | null;
  end_time?: string | null;
  /** Seconds (fractional); 0 while not finished. */
  duration_seconds: number;
  result: ExecutionResult;
  error_message: string;
  retry_count: number;
  /** "" when it never started. */
  executor: string;
  created_at?: string | null;
  task_name?: string;
  /** YYYY-MM-DD in the task's zone: the date the run is for ("" for old runs). */
  logical_date?: string;
  /** This run's own parameters, merged over the task's config. */
  params?: JsonObject;
  /** The run this one runs again (a rerun's original, a retry's failed run); 0 = none. */
  rerun_of_execution_id?: number;
  /** Who triggered this run by hand; "" for scheduled runs, retries and workflow nodes. */
  triggered_by?: string;
  /** Who terminated this run; "" when nobody did. */
  terminated_by?: string;
  /** A mark on how the run was made, e.g. a fire beyond its calendar's data: "日历数据未覆盖: …"; "" = none. */
  note?: string;
}

export type BackfillStatus = 'running' | 'success' | 'failed' | 'cancelled';

export interface BackfillCreate {
  /** YYYY-MM-DD, inclusive, in the task's time zone. */
  start: string;
  end: string;
  max_parallel: number;
  rerun_succeeded: boolean;
  params?: JsonObject;
}

export interface Backfill {
  id: number;
  task_id: number;
  start: string;
  end: string;
  max_parallel: number;
  rerun_succeeded: boolean;
  params: JsonObject;
  status: BackfillStatus;
  total: number;
  skipped: number;
  created: number;
  running: number;
  succeeded: number;
  failed: number;
  created_at?: string | null;
  finished_at?: string | null;
  created_by: string;
}

/** Query of GET /executions and GET /tasks/{id}/executions (task_id then comes from the path). */
export interface ExecutionQuery {
  task_id?: number;
  /** Comma-separated statuses. */
  status?: string;
  /** RFC 3339. */
  start_time_from?: string;
  start_time_to?: string;
  parent_execution_id?: number;
  skip?: number;
  limit?: number;
}

export interface ExecutionList {
  executions: Execution[];
  total: number;
}

/** One `data:` line of the SSE watch stream. */
export interface WatchEvent {
  event_type: 'snapshot' | 'heartbeat' | 'end';
  execution?: Execution;
}

/** GET /api/v1/scheduler/status. */
export interface SystemStatus {
  scheduler_up: boolean;
  /** "" when no scheduler leads. */
  leader: string;
  lease_expires_at?: string | null;
  runs_pending: number;
  /** The executors the leading scheduler sees (about every second); empty while none leads. */
  executors?: ExecutorState[];
  /** Runs the reachable, non-draining executors could still take. */
  free_slots?: number;
}

export interface ExecutorState {
  address: string;
  reachable: boolean;
  capacity: number;
  active_runs: number;
  draining: boolean;
}

// ---- stats, cron, workflow validation -----------------------------------------------------------

export interface Stats {
  total_executions: number;
  success_count: number;
  failed_count: number;
  running_count: number;
  pending_count?: number;
  terminated_count?: number;
  skipped_count?: number;
  /** 0–1. */
  success_rate: number;
  avg_duration_seconds: number;
  latest_execution_time?: string | null;
}

export interface CronPreview {
  next_run_times: string[];
  /** With a calendar: the last day (YYYY-MM-DD) its session data covers. */
  calendar_data_end?: string;
  /** With a calendar, when a listed time lies beyond its data: "日历数据未覆盖: ...". */
  calendar_note?: string;
}

/** silent: a cron time on a non-trading day does nothing; record: recorded as skipped (非交易日). */
export type HolidayPolicy = 'silent' | 'record';

/** GET /calendars: a library calendar (builtin) or a custom one (a base plus added / removed dates). */
export interface TradingCalendar {
  name: string;
  source: 'builtin' | 'custom';
  /** YYYY-MM-DD; "" for a library calendar not loaded yet. */
  data_start: string;
  data_end: string;
  base: string;
  added_dates: string[];
  removed_dates: string[];
  description: string;
}

export interface CalendarChange {
  name?: string;
  base: string;
  added_dates: string[];
  removed_dates: string[];
  data_end: string;
  description: string;
}

export interface WorkflowValidation {
  valid: boolean;
  message: string;
  /** WORKFLOW_INVALID, WORKFLOW_CYCLE, …; "" when valid. */
  reason?: string;
  /** The nodes at fault: a cycle's members, missing or disabled tasks. */
  task_ids?: number[];
}

/** One page of the export document (GET /tasks:export). Items are tasks without ids; a workflow's
 * config names its sub-tasks. */
export interface ExportPage {
  version: number;
  tasks: JsonObject[];
  next_after_id: number;
}

export interface TransferDocument {
  version: number;
  tasks: JsonObject[];
}

export type ImportAction = 'created' | 'updated' | 'unchanged';

export interface ImportResult {
  dry_run: boolean;
  created: number;
  updated: number;
  unchanged: number;
  tasks: { name: string; action: ImportAction; task_id: number }[];
}

/** A page of a run's log (GET /executions/{id}/log). Offsets are bytes; int64 arrive as strings. */
export interface ExecutionLogPage {
  text: string;
  next_offset: string | number;
  size: string | number;
  complete: boolean;
}

/** An event of the log stream (GET /executions/{id}/log/stream). */
export interface LogStreamEvent {
  event_type: 'log' | 'heartbeat' | 'end';
  text: string;
  offset: string | number;
  next_offset: string | number;
  status: ExecutionStatus | '';
}

// ---- audit log -----------------------------------------------------------------------------------

export type AuditAction =
  | 'task.create'
  | 'task.update'
  | 'task.delete'
  | 'task.enable'
  | 'task.disable'
  | 'task.pause'
  | 'task.resume'
  | 'task.trigger'
  | 'execution.terminate'
  | 'user.create'
  | 'user.update'
  | 'user.delete'
  | 'user.unlock'
  | 'user.login'
  | 'user.login_failed'
  | 'alert_channel.create'
  | 'alert_channel.update'
  | 'alert_channel.delete'
  | 'alert_channel.test'
  | 'alert_rule.create'
  | 'alert_rule.update'
  | 'alert_rule.delete';

export type AuditTargetType = 'task' | 'execution' | 'user' | 'alert_channel' | 'alert_rule';

/** One entry of GET /api/v1/audit (admin). */
export interface AuditEntry {
  id: number;
  time: string;
  actor: string;
  /** The client address the gateway saw. */
  address: string;
  action: AuditAction;
  target_type: AuditTargetType;
  /** Task, execution, alert channel or rule id, or username. */
  target_id: string;
  target_name: string;
  /** Updates: {field: [before, after]}; creates: the fields given; triggers: {execution_id}. */
  changes: JsonObject;
}

export interface AuditQuery {
  skip: number;
  limit: number;
  actor?: string;
  action?: AuditAction;
  target_type?: AuditTargetType;
  target_id?: string;
}

export interface AuditPage {
  entries: AuditEntry[];
  /** All matches, not just this page. */
  total: number;
}

// ---- alerts (/api/v1/alerts) ----

export type AlertChannelType = 'email' | 'webhook' | 'dingtalk' | 'wecom' | 'feishu';
export const ALERT_CHANNEL_TYPES: AlertChannelType[] = ['email', 'webhook', 'dingtalk', 'wecom', 'feishu'];
export const ALERT_EVENTS = [
  'run_failed',
  'attempt_failed',
  'timeout',
  'executor_lost',
  'skipped',
  'slow',
  'recovered',
  'calendar_data_ending',
] as const;
export type AlertEvent = (typeof ALERT_EVENTS)[number];

export interface AlertChannel {
  id: number;
  name: string;
  type: AlertChannelType;
  config: JsonObject;
  /** Names of the secrets stored for it; their values are never returned. */
  secrets_set: string[];
  created_at?: string | null;
}

export interface AlertChannelSave {
  name: string;
  type: AlertChannelType;
  config: JsonObject;
}

export interface AlertRule {
  id: number;
  name: string;
  events: AlertEvent[];
  channel_ids: number[];
  task_id: number;
  slow_seconds: number;
  rate_limit_count: number;
  rate_limit_seconds: number;
  enabled: boolean;
}

export type AlertRuleSave = Omit<AlertRule, 'id'>;

export interface AlertDelivery {
  id: number;
  event: string;
  rule_id: number;
  channel_id: number;
  task_id: number;
  execution_id: number;
  state: 'pending' | 'sent' | 'failed' | 'suppressed' | 'digested';
  attempts: number;
  last_error: string;
  created_at?: string | null;
  sent_at?: string | null;
}
