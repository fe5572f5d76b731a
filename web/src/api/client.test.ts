import { describe, expect, it } from 'vitest';

import { ApiError, buildUrl, errorText } from './client';

describe('buildUrl', () => {
  it('leaves out empty values so the gateway sees only real filters', () => {
    expect(
      buildUrl('/api/v1/scheduler/tasks', {
        skip: 0,
        limit: 20,
        task_type: undefined,
        enabled: false,
        name: '',
        order_by: 'id',
      }),
    ).toBe('/api/v1/scheduler/tasks?skip=0&limit=20&enabled=false&order_by=id');
  });
  it('encodes values', () => {
    expect(buildUrl('/p', { cron_expression: '0/15 * * * *', timezone: 'Asia/Shanghai' })).toBe(
      '/p?cron_expression=0%2F15+*+*+*+*&timezone=Asia%2FShanghai',
    );
  });
});

describe('errorText', () => {
  it("shows the server's detail", () => {
    expect(errorText(new ApiError(409, '任务名称已存在'), '创建失败')).toBe('任务名称已存在');
    expect(errorText(new Error('x'), '创建失败')).toBe('创建失败');
  });
});
