// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { api, ApiError } from './client';
import { onSessionEnd, storeTokens } from './session';

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status });

beforeEach(() => {
  localStorage.clear();
  storeTokens({ access_token: 'old', refresh_token: 'r1', token_type: 'bearer', expires_in: 900 });
});
afterEach(() => vi.unstubAllGlobals());

describe('401 handling', () => {
  it('refreshes once and retries with the new token', async () => {
    const seen: string[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init: RequestInit) => {
        const auth = (init.headers as Record<string, string>).Authorization ?? '';
        seen.push(`${init.method} ${url} ${auth}`);
        if (url === '/api/v1/auth/refresh') {
          expect(JSON.parse(init.body as string)).toEqual({ refresh_token: 'r1' });
          return json(200, {
            access_token: 'new',
            refresh_token: 'r2',
            token_type: 'bearer',
            expires_in: 900,
          });
        }
        return auth === 'Bearer new'
          ? json(200, { username: 'admin', role: 'admin' })
          : json(401, { detail: 'Jwt is expired' });
      }),
    );
    expect(await api.me()).toEqual({ username: 'admin', role: 'admin' });
    expect(seen).toEqual([
      'GET /api/v1/auth/me Bearer old',
      'POST /api/v1/auth/refresh ',
      'GET /api/v1/auth/me Bearer new',
    ]);
    expect(localStorage.getItem('zq.refresh_token')).toBe('r2');
    expect(localStorage.getItem('zq.access_token')).toBe('new');
    expect(document.cookie).not.toContain('access_token');
  });

  it('ends the session when the refresh fails', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) =>
        url === '/api/v1/auth/refresh'
          ? json(401, { detail: '无效的刷新Token' })
          : json(401, { detail: 'Jwt is expired' }),
      ),
    );
    const ended = vi.fn();
    const unsubscribe = onSessionEnd(ended);
    await expect(api.me()).rejects.toEqual(new ApiError(401, 'Jwt is expired'));
    unsubscribe();
    expect(ended).toHaveBeenCalledOnce();
    expect(localStorage.getItem('zq.access_token')).toBeNull();
    expect(document.cookie).not.toContain('access_token=');
  });

  it('logs out on the server with the token in the Authorization header and a JSON body', async () => {
    const fetch = vi.fn(async () => json(200, { message: '已退出登录' }));
    vi.stubGlobal('fetch', fetch);
    expect(await api.logout()).toEqual({ message: '已退出登录' });
    expect(fetch).toHaveBeenCalledWith('/api/v1/auth/logout', {
      method: 'POST',
      headers: {
        Accept: 'application/json',
        'Content-Type': 'application/json',
        Authorization: 'Bearer old',
      },
      body: '{}',
      credentials: 'same-origin',
    });
  });

  it('shows non-2xx bodies by their detail', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => json(409, { detail: '任务被编排任务引用' })),
    );
    await expect(api.deleteTask(3)).rejects.toMatchObject({ status: 409, detail: '任务被编排任务引用' });
  });
});
