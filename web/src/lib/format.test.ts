import { describe, expect, it } from 'vitest';

import { formatDuration, formatPercent, formatTime, successRateColor } from './format';

const zh = { h: '小时', m: '分', s: '秒' };

describe('formatTime', () => {
  it('shows RFC 3339 UTC instants in local time (TZ=Asia/Shanghai here)', () => {
    expect(formatTime('2025-01-20T02:00:00Z')).toBe('2025-01-20 10:00:00');
    expect(formatTime('2025-01-20T02:00:00.123456Z')).toBe('2025-01-20 10:00:00');
  });
  it('shows a dash for missing or invalid values', () => {
    expect(formatTime(undefined)).toBe('-');
    expect(formatTime(null)).toBe('-');
    expect(formatTime('')).toBe('-');
    expect(formatTime('not a time')).toBe('-');
  });
});

describe('formatDuration', () => {
  it('keeps one decimal below a minute', () => {
    expect(formatDuration(0, zh)).toBe('0秒');
    expect(formatDuration(3.24, zh)).toBe('3.2秒');
    expect(formatDuration(30, zh)).toBe('30秒');
    expect(formatDuration(59.96, zh)).toBe('1分0秒');
  });
  it('uses minutes and hours above', () => {
    expect(formatDuration(125, zh)).toBe('2分5秒');
    expect(formatDuration(3725, zh)).toBe('1小时2分5秒');
  });
  it('rejects nonsense', () => {
    expect(formatDuration(-1, zh)).toBe('-');
    expect(formatDuration(Number.NaN, zh)).toBe('-');
    expect(formatDuration(undefined, zh)).toBe('-');
  });
});

describe('success rate', () => {
  it('prints two decimals', () => {
    expect(formatPercent(0.98765)).toBe('98.77%');
    expect(formatPercent(0)).toBe('0.00%');
  });
  it('colours green from 90 %, orange from 70 %, else red', () => {
    expect(successRateColor(0.9)).toBe('green');
    expect(successRateColor(0.8999)).toBe('orange');
    expect(successRateColor(0.7)).toBe('orange');
    expect(successRateColor(0.69)).toBe('red');
  });
});
