// The one HTTP client of the app: typed functions for every endpoint the UI uses.
// Errors are thrown as ApiError carrying the body's `detail`. A 401 triggers one refresh attempt
// (shared by concurrent requests) and a retry; if that fails the session ends (back to login).

import { accessToken, endSession, refreshToken, storeTokens } from './session';
import type {
  CalendarChange,
  Backfill,
  BackfillCreate,
  AuditPage,
  AuditQuery,
  AlertChannel,
  AlertChannelSave,
  AlertDelivery,
  AlertRule,
  AlertRuleSave,
  CronPreview,
  CurrentUser,
  DeleteResponse,
  Execution,
  ExportPage,
  ExecutionList,
  ExecutionLogPage,
  ExecutionQuery,
  ImportResult,
  JsonObject,
  LoginRequest,
  Stats,
  SystemStatus,
  Task,
  TaskCreate,
  TaskList,
  TaskListQuery,
  TaskUpdate,
  TokenPair,
  TransferDocument,
  TradingCalendar,
  TriggerResponse,
  UnlockResponse,
  User,
  UserCreate,
  UserList,
  UserUpdate,
  WorkflowNodes,
  WorkflowValidation,
} from './types';

const AUTH = '/api/v1/auth';
const SCHEDULER = '/api/v1/scheduler';
const ALERTS = '/api/v1/alerts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
    this.name = 'ApiError';
  }
}

type QueryValue = string | number | boolean | null | undefined;
type Query = Record<string, QueryValue>;

interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** false for login/refresh: no token, no refresh-on-401. */
  auth?: boolean;
}

/** Builds `path?query`, leaving out empty values (the gateway rejects unknown, not empty, params). */
export function buildUrl(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === '') continue;
    params.append(key, String(value));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

async function send(method: string, url: string, body: unknown, auth: boolean): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = auth ? accessToken() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  return fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
}

async function toApiError(response: Response): Promise<ApiError> {
  let detail = response.statusText || `HTTP ${response.status}`;
  try {
    const text = await response.text();
    if (text) {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object' && 'detail' in parsed) {
        const value = (parsed as { detail: unknown }).detail;
        detail = typeof value === 'string' ? value : JSON.stringify(value);
      } else {
        detail = text;
      }
    }
  } catch {
    // Not JSON: keep the status text.
  }
  return new ApiError(response.status, detail);
}

let refreshing: Promise<boolean> | null = null;

/** Exchanges the refresh token for a new pair; concurrent 401s share one attempt. */
function refreshOnce(): Promise<boolean> {
  refreshing ??= (async () => {
    const token = refreshToken();
    if (!token) return false;
    try {
      const response = await send('POST', `${AUTH}/refresh`, { refresh_token: token }, false);
      if (!response.ok) return false;
      storeTokens((await response.json()) as TokenPair);
      return true;
    } catch {
      return false;
    }
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const { query, body, auth = true } = options;
  const url = buildUrl(path, query);
  let response = await send(method, url, body, auth);
  if (response.status === 401 && auth) {
    if (await refreshOnce()) response = await send(method, url, body, auth);
    if (response.status === 401) {
      const error = await toApiError(response);
      endSession();
      throw error;
    }
  }
  if (!response.ok) throw await toApiError(response);
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

const task = (id: number) => `${SCHEDULER}/tasks/${id}`;

export const api = {
  // auth
  login: (body: LoginRequest) => request<TokenPair>('POST', `${AUTH}/login`, { body, auth: false }),
  me: () => request<CurrentUser>('GET', `${AUTH}/me`),
  /** Ends this session on the server (its tokens stop working) and clears the cookie. */
  logout: () => request<{ message: string }>('POST', `${AUTH}/logout`, { body: {} }),

  // users (admin)
  listUsers: () => request<UserList>('GET', `${AUTH}/users`),
  createUser: (body: UserCreate) => request<User>('POST', `${AUTH}/users`, { body }),
  updateUser: (username: string, changes: UserUpdate) =>
    request<User>('PUT', `${AUTH}/users/${encodeURIComponent(username)}`, { body: changes }),
  listAudit: (query: AuditQuery) => request<AuditPage>('GET', '/api/v1/audit', { query: { ...query } }),
  unlockUser: (username: string) =>
    request<UnlockResponse>('POST', `${AUTH}/users/${encodeURIComponent(username)}/unlock`, { body: {} }),

  // alerts: channels (admin), rules, delivery history
  listAlertChannels: () => request<{ channels: AlertChannel[] }>('GET', `${ALERTS}/channels`),
  createAlertChannel: (body: AlertChannelSave) =>
    request<AlertChannel>('POST', `${ALERTS}/channels`, { body }),
  /** Replaces a channel; a secret left out of `config` (or "") keeps its stored value, null removes it. */
  updateAlertChannel: (id: number, body: AlertChannelSave) =>
    request<AlertChannel>('PUT', `${ALERTS}/channels/${id}`, { body }),
  deleteAlertChannel: (id: number) => request<DeleteResponse>('DELETE', `${ALERTS}/channels/${id}`),
  testAlertChannel: (id: number) =>
    request<{ ok: boolean; error: string; delivery_id: number }>('POST', `${ALERTS}/channels/${id}/test`, {
      body: {},
    }),
  listAlertRules: (taskId?: number) =>
    request<{ rules: AlertRule[] }>('GET', `${ALERTS}/rules`, { query: { task_id: taskId } }),
  createAlertRule: (body: AlertRuleSave) => request<AlertRule>('POST', `${ALERTS}/rules`, { body }),
  updateAlertRule: (id: number, body: AlertRuleSave) =>
    request<AlertRule>('PUT', `${ALERTS}/rules/${id}`, { body }),
  deleteAlertRule: (id: number) => request<DeleteResponse>('DELETE', `${ALERTS}/rules/${id}`),
  listAlertDeliveries: (limit = 50) =>
    request<{ deliveries: AlertDelivery[]; total: number }>('GET', `${ALERTS}/deliveries`, {
      query: { limit },
    }),

  // tasks
  listTasks: (query: TaskListQuery) =>
    request<TaskList>('GET', `${SCHEDULER}/tasks`, { query: { ...query } }),
  getTask: (id: number) => request<Task>('GET', task(id)),
  createTask: (body: TaskCreate) => request<Task>('POST', `${SCHEDULER}/tasks`, { body }),
  updateTask: (id: number, changes: TaskUpdate) => request<Task>('PUT', task(id), { body: changes }),
  deleteTask: (id: number, force = false) =>
    request<DeleteResponse>('DELETE', task(id), { query: { force: force || undefined } }),
  setTaskState: (id: number, action: 'enable' | 'disable' | 'pause' | 'resume') =>
    request<Task>('POST', `${task(id)}/${action}`, { body: {} }),
  triggerTask: (id: number) => request<TriggerResponse>('POST', `${task(id)}/trigger`, { body: {} }),
  getWorkflow: (id: number) => request<WorkflowNodes>('GET', `${task(id)}/workflow`),
  validateWorkflow: (id: number, config: JsonObject) =>
    request<WorkflowValidation>('POST', `${task(id)}/workflow/validate`, { body: config }),

  // import / export
  exportPage: (afterId: number, limit = 1000) =>
    request<ExportPage>('GET', `${SCHEDULER}/tasks:export`, { query: { after_id: afterId, limit } }),
  importTasks: (document: TransferDocument, dryRun: boolean) =>
    request<ImportResult>('POST', `${SCHEDULER}/tasks:import`, {
      query: { dry_run: dryRun || undefined },
      body: document,
    }),

  // executions
  listTaskExecutions: (taskId: number, query: Omit<ExecutionQuery, 'task_id'>) =>
    request<ExecutionList>('GET', `${task(taskId)}/executions`, { query: { ...query } }),
  listExecutions: (query: ExecutionQuery) =>
    request<ExecutionList>('GET', `${SCHEDULER}/executions`, { query: { ...query } }),
  getExecution: (taskId: number, executionId: number) =>
    request<Execution>('GET', `${task(taskId)}/executions/${executionId}`),
  watchUrl: (taskId: number, executionId: number) => `${task(taskId)}/executions/${executionId}/watch`,
  getExecutionLog: (executionId: number, offset: number, limit?: number) =>
    request<ExecutionLogPage>('GET', `${SCHEDULER}/executions/${executionId}/log`, {
      query: { offset, limit },
    }),
  logStreamUrl: (executionId: number, offset = 0) =>
    `${SCHEDULER}/executions/${executionId}/log/stream?offset=${offset}`,
  terminateExecution: (executionId: number) =>
    request<Execution>('POST', `${SCHEDULER}/executions/${executionId}/terminate`, { body: {} }),
  rerunExecution: (executionId: number, from: 'failed' | 'start') =>
    request<Execution>('POST', `${SCHEDULER}/executions/${executionId}/rerun`, { body: { from } }),
  /** One node of a finished workflow run, alone: a new child run of it. */
  rerunNode: (executionId: number, taskId: number) =>
    request<Execution>('POST', `${SCHEDULER}/executions/${executionId}/rerun`, {
      body: { from: 'node', task_id: taskId },
    }),

  // backfills
  createBackfill: (taskId: number, body: BackfillCreate) =>
    request<Backfill>('POST', `${task(taskId)}/backfill`, { body: { ...body } }),
  listBackfills: (taskId: number) =>
    request<{ backfills: Backfill[] }>('GET', `${SCHEDULER}/backfills`, { query: { task_id: taskId } }),
  cancelBackfill: (backfillId: number) =>
    request<Backfill>('POST', `${SCHEDULER}/backfills/${backfillId}/cancel`, { body: {} }),

  // status, stats, cron
  getStatus: () => request<SystemStatus>('GET', `${SCHEDULER}/status`),
  getStats: (taskId?: number) => request<Stats>('GET', `${SCHEDULER}/stats`, { query: { task_id: taskId } }),
  previewCron: (cronExpression: string, timezone: string, count = 5, calendar = '', calendarShift = 0) =>
    request<CronPreview>('GET', `${SCHEDULER}/cron/preview`, {
      query: {
        cron_expression: cronExpression,
        timezone,
        count,
        ...(calendar ? { calendar, calendar_shift: calendarShift } : {}),
      },
    }),

  // trading calendars
  listCalendars: () => request<{ calendars: TradingCalendar[] }>('GET', `${SCHEDULER}/calendars`),
  createCalendar: (calendar: CalendarChange) =>
    request<TradingCalendar>('POST', `${SCHEDULER}/calendars`, { body: calendar }),
  updateCalendar: (name: string, calendar: CalendarChange) =>
    request<TradingCalendar>('PUT', `${SCHEDULER}/calendars/${encodeURIComponent(name)}`, { body: calendar }),
  deleteCalendar: (name: string) =>
    request<{ message: string }>('DELETE', `${SCHEDULER}/calendars/${encodeURIComponent(name)}`),
};

/** The message to show for a failed call: the server's `detail`, else the given fallback. */
export function errorText(error: unknown, fallback: string): string {
  if (error instanceof ApiError && error.detail) return error.detail;
  if (error instanceof TypeError) return `${fallback}: ${error.message}`;
  return fallback;
}
