import { describe, expect, it } from 'vitest';

import { canonicalJson, parseConfig, positionOf } from './json';

describe('parseConfig', () => {
  it('accepts an empty editor as "no config"', () => {
    expect(parseConfig('  \n')).toEqual({ ok: true, value: null });
  });
  it('parses objects', () => {
    expect(parseConfig('{"steps": 30, "success_rate": 1.0}')).toEqual({
      ok: true,
      value: { steps: 30, success_rate: 1 },
    });
  });
  it('reports the line and column of a syntax error', () => {
    const result = parseConfig('{\n  "steps": 30,\n  "message" "x"\n}');
    expect(result.ok).toBe(false);
    if (!result.ok && result.kind === 'syntax') {
      expect(result.line).toBe(3);
      expect(result.column).toBe(13);
      expect(result.reason).not.toMatch(/position/);
    } else {
      throw new Error('expected a syntax error');
    }
  });
  it('puts a truncated document at its end', () => {
    const result = parseConfig('{\n  "steps": 3');
    expect(result).toMatchObject({ ok: false, kind: 'syntax', line: 2 });
  });
  it('rejects JSON that is not an object', () => {
    expect(parseConfig('[1, 2]')).toEqual({ ok: false, kind: 'not_object' });
    expect(parseConfig('42')).toEqual({ ok: false, kind: 'not_object' });
    expect(parseConfig('null')).toEqual({ ok: false, kind: 'not_object' });
  });
});

describe('positionOf', () => {
  it('is 1-based', () => {
    expect(positionOf('ab\ncd', 0)).toEqual({ line: 1, column: 1 });
    expect(positionOf('ab\ncd', 4)).toEqual({ line: 2, column: 2 });
  });
});

describe('canonicalJson', () => {
  it('ignores key order at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 1, x: 2 }], c: 2 } })).toBe(
      canonicalJson({ a: { c: 2, d: [1, { x: 2, y: 1 }] }, b: 1 }),
    );
  });
});
