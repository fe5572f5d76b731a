import { describe, expect, it } from 'vitest';

import { describeChanges } from './AuditDrawer';

describe('describeChanges', () => {
  it('shows an update as before → after and other changes as their value', () => {
    expect(describeChanges({ max_retries: [3, 0], tags: [['a'], ['a', 'b']] }, true)).toBe(
      'max_retries: 3 → 0; tags: ["a"] → ["a","b"]',
    );
    expect(describeChanges({ execution_id: 7, password: 'changed' }, true)).toBe(
      'execution_id: 7; password: changed',
    );
  });

  it("shows a create's two tags as its value, not as a change", () => {
    expect(describeChanges({ tags: ['a', 'b'] }, false)).toBe('tags: ["a","b"]');
    expect(describeChanges({}, false)).toBe('');
  });
});
