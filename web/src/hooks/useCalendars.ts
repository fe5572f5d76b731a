import { useCallback } from 'react';

import { api } from '../api/client';
import type { TradingCalendar } from '../api/types';
import { useRemote, type Remote } from './useRemote';

/** GET /calendars: the library's trading calendars and the custom ones. */
export function useCalendars(): Remote<TradingCalendar[]> {
  const fetcher = useCallback(async () => (await api.listCalendars()).calendars, []);
  return useRemote(fetcher);
}
