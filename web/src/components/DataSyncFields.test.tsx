// @vitest-environment jsdom
// A data-sync task's config is edited field by field: each change rewrites the JSON text.

import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { I18nProvider } from '../i18n';
import { DataSyncFields } from './DataSyncFields';

afterEach(cleanup);

describe('data-sync fields', () => {
  it('writes what is typed into the config and drops a field that is emptied', () => {
    const onChange = vi.fn<(text: string) => void>();
    const { rerender } = render(
      <I18nProvider>
        <DataSyncFields type="data_sync_daily_data" config={null} onChange={onChange} />
      </I18nProvider>,
    );
    fireEvent.change(screen.getByTestId('sync-symbol'), { target: { value: '600000.SH' } });
    expect(JSON.parse(onChange.mock.lastCall![0])).toEqual({ symbol: '600000.SH' });

    rerender(
      <I18nProvider>
        <DataSyncFields
          type="data_sync_daily_data"
          config={{ symbol: '600000.SH', start_date: '2024-01-02' }}
          onChange={onChange}
        />
      </I18nProvider>,
    );
    fireEvent.change(screen.getByTestId('sync-start-date'), { target: { value: '' } });
    expect(JSON.parse(onChange.mock.lastCall![0])).toEqual({ symbol: '600000.SH' });
  });

  it('offers the whole-market sync its symbols as a list and resume as a switch', () => {
    const onChange = vi.fn<(text: string) => void>();
    render(
      <I18nProvider>
        <DataSyncFields type="data_sync_all_daily_data" config={{}} onChange={onChange} />
      </I18nProvider>,
    );
    fireEvent.change(screen.getByTestId('sync-symbols'), { target: { value: '600000.SH, 000001' } });
    expect(JSON.parse(onChange.mock.lastCall![0])).toEqual({ symbols: ['600000.SH', '000001'] });
    fireEvent.click(screen.getByTestId('sync-resume'));
    expect(JSON.parse(onChange.mock.lastCall![0])).toEqual({ resume: false });
    expect(screen.queryByTestId('sync-symbol')).toBeNull();
  });
});
