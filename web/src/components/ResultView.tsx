// An execution's `result` for people: its fields as a table; output tails and other long text as
// code blocks; lists of records (a run's steps) as small tables; other structures indented.

import { Descriptions, Table, Typography } from 'antd';

import type { JsonObject, JsonValue } from '../api/types';
import { prettyJson } from '../lib/json';

type Json = JsonValue | undefined;

const isRecord = (value: Json): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function Value({ name, value }: { name: string; value: Json }) {
  if (value === null || value === undefined || value === '')
    return <Typography.Text type="secondary">-</Typography.Text>;
  if (typeof value === 'boolean') return <>{value ? '✓' : '✗'}</>;
  if (typeof value === 'string') {
    return value.includes('\n') || value.length > 120 ? (
      <pre className="json-view result-text" data-testid={`result-text-${name}`}>
        {value}
      </pre>
    ) : (
      <>{value}</>
    );
  }
  if (typeof value === 'number') return <>{value}</>;
  if (Array.isArray(value) && value.length > 0 && value.every(isRecord)) {
    const columns = [...new Set(value.flatMap((row) => Object.keys(row)))].map((key) => ({
      key,
      title: key,
      dataIndex: key,
      render: (cell: Json) =>
        isRecord(cell) || Array.isArray(cell) ? JSON.stringify(cell) : String(cell ?? ''),
    }));
    return (
      <Table
        size="small"
        pagination={value.length > 10 ? { pageSize: 10, size: 'small' } : false}
        rowKey={(_, index) => String(index)}
        columns={columns}
        dataSource={value}
      />
    );
  }
  return (
    <pre className="json-view result-text" data-testid={`result-text-${name}`}>
      {prettyJson(value)}
    </pre>
  );
}

export function ResultView({ result }: { result: Record<string, Json> }) {
  const entries = Object.entries(result);
  if (entries.length === 0) return <Typography.Text type="secondary">-</Typography.Text>;
  return (
    <Descriptions size="small" bordered column={1} data-testid="result-table">
      {entries.map(([name, value]) => (
        <Descriptions.Item key={name} label={name}>
          <div data-testid={`result-field-${name}`}>
            <Value name={name} value={value} />
          </div>
        </Descriptions.Item>
      ))}
    </Descriptions>
  );
}
