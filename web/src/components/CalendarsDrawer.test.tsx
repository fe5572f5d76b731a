import { describe, expect, it } from 'vitest';

import type { TradingCalendar } from '../api/types';
import { sortCalendars } from './CalendarsDrawer';

const calendar = (name: string, source: TradingCalendar['source'], data_end = ''): TradingCalendar => ({
  name,
  source,
  data_start: data_end ? '2006-01-04' : '',
  data_end,
  base: source === 'custom' ? 'XSHG' : '',
  added_dates: [],
  removed_dates: [],
  description: '',
});

describe('sortCalendars', () => {
  it('puts the custom calendars first, then the loaded library ones, then the rest, by name', () => {
    const listed = [
      calendar('24/7', 'builtin'),
      calendar('XSHG', 'builtin', '2026-12-31'),
      calendar('AIXK', 'builtin'),
      calendar('XHKG', 'builtin', '2026-12-31'),
      calendar('MINE', 'custom', '2026-12-31'),
      calendar('COMPANY', 'custom', '2027-06-30'),
    ];
    expect(sortCalendars(listed).map((item) => item.name)).toEqual([
      'COMPANY',
      'MINE',
      'XHKG',
      'XSHG',
      '24/7',
      'AIXK',
    ]);
    expect(listed[0]?.name).toBe('24/7');
  });
});
