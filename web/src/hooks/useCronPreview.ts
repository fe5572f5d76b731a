import { useCallback } from 'react';

import { api } from '../api/client';
import { useDebouncedValue } from './useDebouncedValue';
import { useRemote } from './useRemote';

export const CRON_DEBOUNCE_MS = 300;

export interface CronPreviewState {
  /** Next run times (RFC 3339), when the expression is valid. */
  times: string[] | undefined;
  /** With a calendar: where its data ends, and the mark for times beyond it. */
  calendarDataEnd?: string;
  calendarNote?: string;
  /** The server's 400 detail (it names the error position), or another failure. */
  error: unknown;
  checking: boolean;
}

/** Next five run times of the expression being typed, debounced 300 ms, with the trading calendar
 * applied when one is chosen. */
export function useCronPreview(
  expression: string,
  timezone: string,
  calendar = '',
  calendarShift = 0,
): CronPreviewState {
  const typed = expression.trim();
  const debounced = useDebouncedValue(typed, CRON_DEBOUNCE_MS);
  const fetcher = useCallback(
    () => api.previewCron(debounced, timezone, 5, calendar, calendarShift),
    [debounced, timezone, calendar, calendarShift],
  );
  const remote = useRemote(debounced ? fetcher : null);
  if (typed === '') return { times: undefined, error: undefined, checking: false };
  const checking = remote.loading || typed !== debounced;
  return {
    times: checking || remote.error ? undefined : remote.data?.next_run_times,
    calendarDataEnd: remote.data?.calendar_data_end,
    calendarNote: remote.data?.calendar_note,
    error: checking ? undefined : remote.error,
    checking,
  };
}
