// @vitest-environment jsdom
// The UI against an in-memory API: login, list, workflow expansion, roles, live progress, the
// cron preview and the PUT diff.

import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import type { Role } from './api/types';
import { App } from './App';
import { I18nProvider } from './i18n';
import { createFakeApi } from './test/fakeApi';

function start(role: Role, loggedIn = true) {
  const fake = createFakeApi({ username: role, role });
  vi.stubGlobal('fetch', vi.fn(fake.fetch));
  if (loggedIn) {
    localStorage.setItem('zq.access_token', 'a.b.c');
    localStorage.setItem('zq.refresh_token', 'r');
  }
  render(
    <I18nProvider>
      <App />
    </I18nProvider>,
  );
  return fake;
}

const type = (element: HTMLElement, value: string) => fireEvent.change(element, { target: { value } });

beforeEach(() => localStorage.clear());
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('scheduler page', () => {
  it('logs in, keeps the token, lists tasks with the real total and expands a workflow', async () => {
    const fake = start('admin', false);
    type(await screen.findByTestId('login-username'), 'admin');
    type(screen.getByTestId('login-password'), 'secret');
    fireEvent.click(screen.getByTestId('login-submit'));

    expect(await screen.findByTestId('task-row-1')).toBeTruthy();
    expect(localStorage.getItem('zq.access_token')).toBe('a.b.c');
    // The cookie for EventSource is the server's (HttpOnly): scripts never write it.
    expect(document.cookie).not.toContain('access_token');
    expect(screen.getByText('共 42 条')).toBeTruthy();
    const list = fake.requests.find((r) => r.path === '/api/v1/scheduler/tasks');
    expect(Object.fromEntries(list!.query)).toEqual({
      skip: '0',
      limit: '20',
      order_by: 'id',
      order: 'desc',
    });
    expect(screen.getByTestId('action-trigger-1')).toBeTruthy();
    expect(screen.getByTestId('create-task')).toBeTruthy();
    expect(screen.getByText('Cron: 0 18 * * *')).toBeTruthy();
    expect(screen.getByText('每600秒')).toBeTruthy();

    fireEvent.click(screen.getByTestId('expand-2'));
    expect(await screen.findByTestId('task-row-4')).toBeTruthy();
    expect(screen.getByTestId('action-trigger-3')).toBeTruthy();
    expect(screen.getByTestId('task-row-3').className).toContain('child-task-row');
  });

  it('shows a wrong password as the server detail', async () => {
    start('admin', false);
    type(await screen.findByTestId('login-username'), 'admin');
    type(screen.getByTestId('login-password'), 'wrong');
    fireEvent.click(screen.getByTestId('login-submit'));
    expect((await screen.findByTestId('login-error')).textContent).toContain('用户名或密码错误');
  });

  it('shows a viewer no mutation buttons', async () => {
    start('viewer');
    await screen.findByTestId('task-row-1');
    const actions = [...document.querySelectorAll('[data-testid^="action-"]')].map((e) =>
      e.getAttribute('data-testid'),
    );
    expect(actions.sort()).toEqual([
      'action-history-1',
      'action-history-2',
      'action-stats-1',
      'action-stats-2',
    ]);
    expect(screen.queryByTestId('create-task')).toBeNull();
  });

  it('gives an operator state actions but no edit/delete', async () => {
    start('operator');
    await screen.findByTestId('task-row-1');
    expect(screen.getByTestId('action-trigger-1')).toBeTruthy();
    // The less used actions are in the 更多 menu.
    expect(screen.queryByTestId('action-pause-1')).toBeNull();
    fireEvent.click(screen.getByTestId('action-more-1'));
    expect(await screen.findByTestId('action-pause-1')).toBeTruthy();
    expect(screen.getByTestId('action-stats-1')).toBeTruthy();
    expect(screen.queryByTestId('action-edit-1')).toBeNull();
    expect(screen.queryByTestId('action-delete-1')).toBeNull();
  });

  it('triggers, then shows live progress in the history until the run ends', async () => {
    start('operator');
    fireEvent.click(await screen.findByTestId('action-trigger-1'));
    expect(await screen.findByText('任务已触发')).toBeTruthy();

    fireEvent.click(screen.getByTestId('action-history-1'));
    const steps = await screen.findByTestId('exec-steps-11');
    // The progress column follows the status, so it is on screen without scrolling sideways.
    const headers = [...screen.getByTestId('history-drawer').querySelectorAll('thead th')].map(
      (th) => th.textContent,
    );
    expect(headers.indexOf('执行结果')).toBe(headers.indexOf('状态') + 1);
    expect(steps.textContent).toMatch(/步骤 \d+\/30/);
    expect(screen.getByTestId('exec-progress-11')).toBeTruthy();
    expect(screen.getByTestId('exec-status-11').textContent).toBe('运行中');
    expect(screen.getByTestId('exec-terminate-11')).toBeTruthy();
    // jsdom has no EventSource: the fallback polls every 2 s.
    await waitFor(() => expect(screen.getByTestId('exec-steps-11').textContent).toBe('步骤 4/30'), {
      timeout: 5000,
    });
    expect(screen.getByTestId('exec-status-10').textContent).toBe('成功');
    expect(screen.getByTestId('exec-steps-10').textContent).toBe('步骤 30/30');
    fireEvent.click(screen.getByTestId('exec-result-10'));
    // The log first: its lines with numbers, streams and colours.
    expect((await screen.findByTestId('log-line-2', {}, { timeout: 10000 })).textContent).toContain(
      '步骤 1/30 处理完成',
    );
    expect(screen.getByTestId('log-line-3').querySelector('span[style*="color"]')?.textContent).toBe(
      'warning',
    );
    // The result as a table, not JSON.
    fireEvent.click(screen.getByTestId('result-tab'));
    expect((await screen.findByTestId('result-field-message')).textContent).toBe('长时间任务执行完成');
    expect(screen.getByTestId('result-field-total_steps').textContent).toBe('30');
  });

  it('previews cron as you type and shows the error position', async () => {
    start('admin');
    fireEvent.click(await screen.findByTestId('create-task'));
    fireEvent.click(await screen.findByTestId('form-schedule-mode-cron'));
    type(await screen.findByTestId('form-cron'), '0 18');
    expect((await screen.findByTestId('cron-error')).textContent).toContain('位置 5');
    type(screen.getByTestId('form-cron'), '0 18 * * *');
    const preview = await screen.findByTestId('cron-preview');
    expect(within(preview).getAllByRole('listitem')).toHaveLength(5);
    expect(preview.textContent).toContain('2025-01-21 18:00:00');

    type(screen.getByTestId('form-config'), '{"steps" 30}');
    expect((await screen.findByTestId('config-error')).textContent).toContain('第 1 行');
  });

  it('edits cron → interval with a PUT of only the changes, null clearing the cron', async () => {
    const fake = start('admin');
    fireEvent.click(await screen.findByTestId('action-more-1'));
    fireEvent.click(await screen.findByTestId('action-edit-1'));
    fireEvent.click(await screen.findByTestId('form-schedule-mode-interval'));
    type(await screen.findByTestId('form-interval'), '60');
    await act(async () => {
      fireEvent.click(screen.getByTestId('form-submit'));
    });
    await waitFor(() => expect(fake.requests.some((r) => r.method === 'PUT')).toBe(true));
    const put = fake.requests.find((r) => r.method === 'PUT');
    expect(put!.path).toBe('/api/v1/scheduler/tasks/1');
    expect(put!.body).toEqual({ cron_expression: null, interval_seconds: 60 });
  });

  it('offers a force delete after a 409 and sends force=true', async () => {
    const fake = start('admin');
    fireEvent.click(await screen.findByTestId('action-more-1'));
    fireEvent.click(await screen.findByTestId('action-delete-1'));
    fireEvent.click(await screen.findByTestId('confirm-delete-1'));
    expect((await screen.findByTestId('force-delete-detail')).textContent).toBe(
      '任务 1 有正在运行的执行，不能删除',
    );
    fireEvent.click(screen.getByTestId('force-delete-ok'));
    await waitFor(() =>
      expect(fake.requests.some((r) => r.method === 'DELETE' && r.query.get('force') === 'true')).toBe(true),
    );
    expect(await screen.findByText('删除成功')).toBeTruthy();
  });

  it('draws the DAG of a workflow run from the global history, nodes coloured by child status', async () => {
    const fake = start('viewer');
    fireEvent.click(await screen.findByTestId('global-history'));
    fireEvent.click(await screen.findByTestId('exec-dag-20'));
    // The DAG chunk (the graph library) loads on first use.
    await waitFor(
      () => expect(screen.getByTestId('dag-node-3').getAttribute('data-status')).toBe('success'),
      {
        timeout: 10_000,
      },
    );
    expect(screen.getByTestId('dag-node-4').getAttribute('data-status')).toBe('running');
    expect(screen.getByTestId('dag-edge-3-4')).toBeTruthy();
    expect(screen.queryByTestId('exec-terminate-20')).toBeNull();
    const children = fake.requests.find((r) => r.query.get('parent_execution_id') === '20');
    expect(children?.path).toBe('/api/v1/scheduler/executions');
  });

  it('shows in the header whether a scheduler leads', async () => {
    const fake = start('viewer');
    const status = await screen.findByTestId('system-status');
    expect(status.getAttribute('data-state')).toBe('up');
    expect(status.textContent).toContain('调度器运行中');
    fake.setSchedulerUp(false);
    await waitFor(() => expect(screen.getByTestId('system-status').getAttribute('data-state')).toBe('down'), {
      timeout: 5000,
    });
    expect(screen.getByTestId('system-status').textContent).toContain('调度器未运行');
  });

  it('switches to English and back, keeping the choice', async () => {
    start('admin');
    await screen.findByTestId('task-row-1');
    fireEvent.click(screen.getByText('EN'));
    expect(await screen.findByText('Create task')).toBeTruthy();
    expect(localStorage.getItem('zq.lang')).toBe('en');
    fireEvent.click(screen.getByText('中文'));
    expect(await screen.findByText('创建任务')).toBeTruthy();
  });
});
