// The form of a data-sync task's config: one input per field of its type (lib/dataSync.ts), no JSON
// needed. Every change rewrites the JSON editor's text, which stays the single source of the config.

import { Col, Input, InputNumber, Row, Select, Switch, Typography } from 'antd';

import type { JsonObject } from '../api/types';
import { useI18n, type MessageKey } from '../i18n';
import {
  CALENDAR_PROVIDERS,
  DATA_SYNC_FIELDS,
  MARKET_PROVIDERS,
  parseSymbols,
  symbolsText,
  withField,
  type DataSyncField,
  type DataSyncType,
} from '../lib/dataSync';
import { prettyJson } from '../lib/json';

interface Props {
  type: DataSyncType;
  config: JsonObject | null;
  onChange: (text: string) => void;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

export function DataSyncFields({ type, config, onChange }: Props) {
  const { t } = useI18n();
  const value = config ?? {};
  const set = (field: DataSyncField, next: Parameters<typeof withField>[2]) =>
    onChange(prettyJson(withField(config, field, next)));
  const text = (field: DataSyncField) => (typeof value[field] === 'string' ? (value[field] as string) : '');
  const id = (field: DataSyncField) => `sync-${field.replace(/_/g, '-')}`;

  const input = (field: DataSyncField) => {
    switch (field) {
      case 'provider': {
        const providers = type === 'data_sync_trading_calendar' ? CALENDAR_PROVIDERS : MARKET_PROVIDERS;
        return (
          <Select
            allowClear
            data-testid={id(field)}
            placeholder={t(
              type === 'data_sync_trading_calendar' ? 'syncProviderCalendarDefault' : 'syncProviderDefault',
            )}
            value={text(field) || undefined}
            onChange={(next?: string) => set(field, next ?? '')}
            options={providers.map((name) => ({ value: name, label: name }))}
          />
        );
      }
      case 'symbols':
        return (
          <Input.TextArea
            rows={2}
            data-testid={id(field)}
            placeholder={t('syncSymbolsPlaceholder')}
            value={symbolsText(value.symbols)}
            onChange={(event) => set(field, parseSymbols(event.target.value))}
          />
        );
      case 'resume':
        return (
          <Switch
            data-testid={id(field)}
            checked={value.resume !== false}
            onChange={(checked) => set(field, checked ? null : false)}
          />
        );
      case 'fetch_delay_seconds':
        return (
          <InputNumber
            min={0}
            max={60}
            step={0.1}
            style={{ width: '100%' }}
            data-testid={id(field)}
            value={typeof value.fetch_delay_seconds === 'number' ? value.fetch_delay_seconds : null}
            onChange={(next) => set(field, next)}
          />
        );
      default: {
        const current = text(field);
        const isDate = field === 'start_date' || field === 'end_date';
        const placeholder: MessageKey = isDate
          ? 'syncDatePlaceholder'
          : field === 'calendar'
            ? 'syncCalendarPlaceholder'
            : field === 'symbol'
              ? 'syncSymbolPlaceholder'
              : 'syncTargetPlaceholder';
        return (
          <Input
            data-testid={id(field)}
            className={field === 'target_url' ? 'mono' : undefined}
            status={isDate && current && !DATE.test(current) && !current.includes('{{') ? 'error' : undefined}
            placeholder={t(placeholder)}
            value={current}
            onChange={(event) => set(field, event.target.value)}
          />
        );
      }
    }
  };

  return (
    <div data-testid="data-sync-fields">
      <Typography.Paragraph type="secondary">{t(`syncHelp_${type}`)}</Typography.Paragraph>
      <Row gutter={16}>
        {DATA_SYNC_FIELDS[type].map((field) => (
          <Col key={field} span={field === 'symbols' || field === 'target_url' ? 24 : 12}>
            <div className="sync-field">
              <Typography.Text strong>{t(`syncField_${field}`)}</Typography.Text>
              {input(field)}
            </div>
          </Col>
        ))}
      </Row>
    </div>
  );
}
