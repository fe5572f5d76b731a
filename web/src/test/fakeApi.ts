// An in-memory stand-in for the gateway, for the jsdom UI tests: answers the REST calls of
// docs/contract.md from a few fixed tasks and records every request.

import type { CurrentUser, Execution, Task, WorkflowNode } from '../api/types';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}

function task(overrides: Partial<Task> & Pick<Task, 'id' | 'name'>): Task {
  return {
    task_type: 'example_task',
    cron_expression: '',
    interval_seconds: 0,
    timezone: 'Asia/Shanghai',
    enabled: true,
    paused: false,
    description: '',
    config: {},
    max_retries: 3,
    retry_interval: 60,
    timeout_seconds: 0,
    concurrency_policy: 'forbid',
    created_at: '2025-01-20T02:00:00Z',
    schedule_status: 'pending',
    latest_execution_status: '',
    ...overrides,
  };
}

function execution(overrides: Partial<Execution> & Pick<Execution, 'id' | 'status'>): Execution {
  return {
    task_id: 1,
    parent_execution_id: 0,
    trigger: 'manual',
    start_time: '2025-01-20T02:00:00Z',
    duration_seconds: 0,
    result: {},
    error_message: '',
    retry_count: 0,
    executor: '127.0.0.1:50061',
    task_name: '实时进度测试任务',
    ...overrides,
  };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

export function createFakeApi(user: CurrentUser) {
  const requests: RecordedRequest[] = [];
  const tasks: Task[] = [
    task({
      id: 1,
      name: '实时进度测试任务',
      cron_expression: '0 18 * * *',
      config: { duration_seconds: 30, success_rate: 1, message: '长时间任务执行完成', steps: 30 },
      latest_execution_status: 'running',
      latest_execution_time: '2025-01-20T02:00:00Z',
      next_run_time: '2025-01-20T10:00:00Z',
    }),
    task({ id: 2, name: '编排任务-串行执行示例', task_type: 'workflow', interval_seconds: 600 }),
  ];
  const children: WorkflowNode[] = [
    {
      ...task({ id: 3, name: '示例任务-步骤1', task_type: 'common_task' }),
      dependencies: [],
      node_name: '步骤1',
    },
    {
      ...task({ id: 4, name: '示例任务-步骤2', task_type: 'common_task' }),
      dependencies: [3],
      node_name: '步骤2',
    },
  ];
  let step = 3;
  let schedulerUp = true;
  const running = () =>
    execution({
      id: 11,
      status: step >= 30 ? 'success' : 'running',
      result: {
        current_step: step,
        total_steps: 30,
        progress_percent: Math.floor((step / 30) * 100),
        status: 'running',
        message: `正在执行步骤 ${step}/30`,
      },
    });

  const handle = (method: string, path: string, query: URLSearchParams, body: unknown): Response => {
    const scheduler = '/api/v1/scheduler';
    if (path === '/api/v1/auth/login') {
      const { password } = body as { password: string };
      return password === 'secret'
        ? json(200, { access_token: 'a.b.c', refresh_token: 'r', token_type: 'bearer', expires_in: 900 })
        : json(401, { detail: '用户名或密码错误' });
    }
    if (path === '/api/v1/auth/me') return json(200, user);
    if (path === `${scheduler}/status`) {
      return json(200, {
        scheduler_up: schedulerUp,
        leader: schedulerUp ? 'scheduler-1' : '',
        runs_pending: 2,
      });
    }
    if (path === `${scheduler}/tasks` && method === 'GET') {
      if (query.get('task_type') === 'workflow') return json(200, { tasks: [tasks[1]], total: 1 });
      return json(200, { tasks, total: 42 });
    }
    if (path === `${scheduler}/tasks/1` && method === 'DELETE') {
      return query.get('force') === 'true'
        ? json(200, { message: '任务已删除' })
        : json(409, { detail: '任务 1 有正在运行的执行，不能删除' });
    }
    if (path === `${scheduler}/executions`) {
      const parent = query.get('parent_execution_id');
      if (parent === '20') {
        return json(200, {
          executions: [
            execution({
              id: 22,
              task_id: 4,
              status: 'running',
              parent_execution_id: 20,
              trigger: 'workflow',
            }),
            execution({
              id: 21,
              task_id: 3,
              status: 'success',
              parent_execution_id: 20,
              trigger: 'workflow',
            }),
          ],
          total: 2,
        });
      }
      return json(200, {
        executions: [
          execution({
            id: 20,
            task_id: 2,
            task_name: '编排任务-串行执行示例',
            status: 'running',
            result: { progress_percent: 50, message: '1/2 个节点已完成' },
          }),
        ],
        total: 1,
      });
    }
    if (path === `${scheduler}/tasks/2/executions/20`) {
      return json(
        200,
        execution({ id: 20, task_id: 2, status: 'running', result: { progress_percent: 50 } }),
      );
    }
    if (path === `${scheduler}/tasks/2/workflow`) return json(200, { tasks: children });
    if (path === `${scheduler}/tasks/1/trigger`)
      return json(200, { message: '任务已触发', execution_id: 12 });
    if (path === `${scheduler}/tasks/1` && method === 'PUT') return json(200, tasks[0]);
    if (path === `${scheduler}/tasks/1/executions`) {
      return json(200, {
        executions: [
          running(),
          execution({
            id: 10,
            status: 'success',
            duration_seconds: 30.2,
            end_time: '2025-01-20T02:00:30Z',
            result: {
              current_step: 30,
              total_steps: 30,
              progress_percent: 100,
              message: '长时间任务执行完成',
            },
          }),
        ],
        total: 2,
      });
    }
    if (path === `${scheduler}/tasks/1/executions/11`) {
      step += 1;
      return json(200, running());
    }
    if (path === `${scheduler}/executions/10/log`) {
      const text = [
        '2025-01-20T02:00:00.000Z system claimed for executor 127.0.0.1:50061, attempt 1',
        '2025-01-20T02:00:01.000Z stdout 步骤 1/30 处理完成',
        '2025-01-20T02:00:30.000Z stderr \x1b[31mwarning\x1b[0m at the end',
        '',
      ].join('\n');
      const offset = Number(query.get('offset') ?? 0);
      const rest = offset === 0 ? text : '';
      return json(200, { text: rest, next_offset: offset + rest.length, size: text.length, complete: true });
    }
    if (path === `${scheduler}/cron/preview`) {
      const expr = query.get('cron_expression') ?? '';
      if (expr.split(' ').length < 5)
        return json(400, { detail: `Cron 表达式无效：第 2 个字段缺失（位置 ${expr.length + 1}）` });
      return json(200, {
        next_run_times: [1, 2, 3, 4, 5].map((d) => `2025-01-2${d}T10:00:00Z`),
      });
    }
    return json(404, { detail: `no fake for ${method} ${path}` });
  };

  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input), 'http://localhost');
    const method = init?.method ?? 'GET';
    const body: unknown = typeof init?.body === 'string' ? JSON.parse(init.body) : undefined;
    requests.push({ method, path: url.pathname, query: url.searchParams, body });
    return handle(method, url.pathname, url.searchParams, body);
  };

  const setSchedulerUp = (up: boolean) => {
    schedulerUp = up;
  };

  return { fetch, requests, setSchedulerUp };
}
