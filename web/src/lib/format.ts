// Display formatting of times and durations (pure; unit-tested).

import dayjs from 'dayjs';

export const TIME_FORMAT = 'YYYY-MM-DD HH:mm:ss';

/** An RFC 3339 instant in the browser's local time, or '-' when absent. */
export function formatTime(value: string | null | undefined): string {
  if (!value) return '-';
  const time = dayjs(value);
  return time.isValid() ? time.format(TIME_FORMAT) : '-';
}

/**
 * The compact form of a time for table cells: `MM-DD HH:mm` (with `:ss` when `seconds`) this year,
 * `YYYY-MM-DD` before; cells show the full time (formatTime) as their tooltip.
 */
export function formatShortTime(value: string | null | undefined, seconds = false, now = dayjs()): string {
  if (!value) return '-';
  const time = dayjs(value);
  if (!time.isValid()) return '-';
  if (time.year() !== now.year()) return time.format('YYYY-MM-DD');
  return time.format(seconds ? 'MM-DD HH:mm:ss' : 'MM-DD HH:mm');
}

export interface DurationUnits {
  h: string;
  m: string;
  s: string;
}

/**
 * Seconds as `1小时2分3秒` / `2分5秒` / `3.2秒` (one decimal below a minute, trailing .0 dropped).
 * Negative or non-finite → '-'.
 */
export function formatDuration(seconds: number | null | undefined, units: DurationUnits): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '-';
  if (seconds < 60) {
    const rounded = Math.round(seconds * 10) / 10;
    if (rounded < 60) return `${rounded}${units.s}`;
  }
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}${units.h}${m}${units.m}${s}${units.s}` : `${m}${units.m}${s}${units.s}`;
}

/** A 0–1 rate as a percentage with two decimals. */
export function formatPercent(rate: number): string {
  return `${(rate * 100).toFixed(2)}%`;
}

/** Colour of a success rate: green ≥ 90 %, orange ≥ 70 %, else red. */
export function successRateColor(rate: number): 'green' | 'orange' | 'red' {
  if (rate >= 0.9) return 'green';
  if (rate >= 0.7) return 'orange';
  return 'red';
}
