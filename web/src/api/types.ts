// Request and response types of the REST API, mirroring /work/shared/design/CONTRACT.md and the
// protos (zquant/scheduler/v1). JSON is snake_case; times are RFC 3339 UTC strings; every scalar field
// is printed (also zero values) while unset message fields (timestamps) are omitted.

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export type Role = 'admin' | 'operator' | 'viewer';
export type TaskType = 'example_task' | 'manual_task' | 'common_task' | 'workflow';
export type ConcurrencyPolicy = 'forbid' | 'allow' | 'replace';
export type ExecutionStatus = 'pending' | 'running' | 'success' | 'failed' | 'terminated' | 'skipped';
export type ExecutionTrigger = 'schedule' | 'manual' | 'retry' | 'workflow';
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
}

export interface TaskList {
  tasks: Task[];
  /** All matches, not just this page. */
  total: number;
}

export interface TriggerResponse {
  message: string;
  execution_id: number;
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
}

export interface WorkflowValidation {
  valid: boolean;
  message: string;
}
