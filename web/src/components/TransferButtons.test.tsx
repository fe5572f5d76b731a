import { describe, expect, it } from 'vitest';

import { parseDocument } from './TransferButtons';

describe('parseDocument', () => {
  it('reads an export document and a bare list of tasks', () => {
    const task = { name: 'a', task_type: 'manual_task' };
    expect(parseDocument(JSON.stringify({ version: 1, tasks: [task] }))).toEqual({
      version: 1,
      tasks: [task],
    });
    expect(parseDocument(JSON.stringify([task]))).toEqual({ version: 1, tasks: [task] });
  });

  it('refuses what is no document', () => {
    expect(parseDocument('{')).toBeNull();
    expect(parseDocument('{"tasks": 3}')).toBeNull();
    expect(parseDocument('"text"')).toBeNull();
  });
});
