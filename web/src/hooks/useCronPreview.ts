import { useCallback } from 'react';

import { api } from '../api/client';
import { useDebouncedValue } from './useDebouncedValue';
import { useRemote } from './useRemote';

export const CRON_DEBOUNCE_MS = 300;

export interface CronPreviewState {
  /** Next run times (RFC 3339), when the expression is valid. */
  times: string[] | undefined;
  /** The server's 400 detail (it names the error position), or another failure. */
  error: unknown;
  checking: boolean;
}

/** Next five run times of the expression being typed, debounced 300 ms. */
export function useCronPreview(expression: string, timezone: string): CronPreviewState {
  const typed = expression.trim();
  const debounced = useDebouncedValue(typed, CRON_DEBOUNCE_MS);
  const fetcher = useCallback(() => api.previewCron(debounced, timezone), [debounced, timezone]);
  const remote = useRemote(debounced ? fetcher : null);
  if (typed === '') return { times: undefined, error: undefined, checking: false };
  const checking = remote.loading || typed !== debounced;
  return {
    times: checking || remote.error ? undefined : remote.data?.next_run_times,
    error: checking ? undefined : remote.error,
    checking,
  };
}
