import { describe, expect, it } from 'vitest';

import { DATA_SYNC_FIELDS, isDataSyncType, parseSymbols, symbolsText, withField } from './dataSync';

describe('data-sync form fields', () => {
  it('sets a field and removes an emptied one so its default applies', () => {
    const config = withField({ provider: 'recorded' }, 'symbol', ' 600000.SH ');
    expect(config).toEqual({ provider: 'recorded', symbol: '600000.SH' });
    expect(withField(config, 'provider', '')).toEqual({ symbol: '600000.SH' });
    expect(withField(config, 'symbols', [])).toEqual(config);
    expect(withField(null, 'resume', false)).toEqual({ resume: false });
  });

  it('reads symbols separated by commas, spaces or lines and shows a list joined', () => {
    expect(parseSymbols('600000.SH, 000001\n300750，830799')).toEqual([
      '600000.SH',
      '000001',
      '300750',
      '830799',
    ]);
    expect(symbolsText(['600000.SH', '000001.SZ'])).toBe('600000.SH, 000001.SZ');
    expect(symbolsText(undefined)).toBe('');
  });

  it('knows the four types and asks the one-symbol type for its symbol first', () => {
    expect(isDataSyncType('data_sync_all_daily_data')).toBe(true);
    expect(isDataSyncType('common_task')).toBe(false);
    expect(DATA_SYNC_FIELDS.data_sync_daily_data[0]).toBe('symbol');
  });
});
