// The data-sync task types' form fields (services/common/data_sync.py holds the rule the registry
// checks on save). The form edits the config object field by field; an emptied field is removed,
// so the task falls back to its default (dates: the run's logical date; provider: the executor's).

import type { JsonObject, JsonValue, TaskType } from '../api/types';

export type DataSyncType =
  'data_sync_stock_list' | 'data_sync_trading_calendar' | 'data_sync_daily_data' | 'data_sync_all_daily_data';

export const DATA_SYNC_TYPES: DataSyncType[] = [
  'data_sync_stock_list',
  'data_sync_trading_calendar',
  'data_sync_daily_data',
  'data_sync_all_daily_data',
];

export type DataSyncField =
  | 'provider'
  | 'symbol'
  | 'symbols'
  | 'calendar'
  | 'start_date'
  | 'end_date'
  | 'resume'
  | 'fetch_delay_seconds'
  | 'target_url';

/** The fields each type's form shows, in order. */
export const DATA_SYNC_FIELDS: Record<DataSyncType, DataSyncField[]> = {
  data_sync_stock_list: ['provider', 'target_url'],
  data_sync_trading_calendar: ['calendar', 'provider', 'start_date', 'end_date', 'target_url'],
  data_sync_daily_data: ['symbol', 'start_date', 'end_date', 'provider', 'target_url'],
  data_sync_all_daily_data: [
    'symbols',
    'start_date',
    'end_date',
    'provider',
    'resume',
    'fetch_delay_seconds',
    'target_url',
  ],
};

export const MARKET_PROVIDERS = ['akshare', 'baostock', 'tushare', 'recorded'];
export const CALENDAR_PROVIDERS = ['exchange_calendars', 'akshare', 'baostock', 'tushare'];

export function isDataSyncType(type: TaskType | string): type is DataSyncType {
  return (DATA_SYNC_TYPES as string[]).includes(type);
}

/** `config` with `field` set to `value`; "", null, undefined and [] remove it (the default applies). */
export function withField(
  config: JsonObject | null,
  field: DataSyncField,
  value: JsonValue | undefined,
): JsonObject {
  const next: JsonObject = { ...(config ?? {}) };
  const empty =
    value === undefined ||
    value === null ||
    (typeof value === 'string' && value.trim() === '') ||
    (Array.isArray(value) && value.length === 0);
  if (empty) delete next[field];
  else next[field] = typeof value === 'string' ? value.trim() : value;
  return next;
}

/** "600000.SH, 000001" / one per line → ["600000.SH", "000001"]. */
export function parseSymbols(text: string): string[] {
  return text
    .split(/[\s,，]+/)
    .map((part) => part.trim())
    .filter(Boolean);
}

/** The symbols field's text: a list joined, a string as it is. */
export function symbolsText(value: JsonValue | undefined): string {
  if (Array.isArray(value)) return value.map(String).join(', ');
  return typeof value === 'string' ? value : '';
}
