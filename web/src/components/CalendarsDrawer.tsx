// Trading calendars (any role reads; admins change): the custom calendars, then the library's
// (the loaded ones first), with where each one's session data ends (beyond it weekdays fire, marked 日历数据未覆盖). Admins
// create, edit and delete custom calendars (a base plus added and removed dates). Backed by
// /api/v1/scheduler/calendars; the scheduler picks up a change at once.

import { PlusOutlined, ReloadOutlined } from '@ant-design/icons';
import { Button, Drawer, Form, Input, Modal, Popconfirm, Select, Space, Table, Tag, Typography } from 'antd';
import type { ColumnsType } from 'antd/es/table';
import { useState } from 'react';

import { api, errorText } from '../api/client';
import type { CalendarChange, TradingCalendar } from '../api/types';
import { useAction } from '../hooks/useAction';
import { useCalendars } from '../hooks/useCalendars';
import { useI18n } from '../i18n';
import { testId } from '../lib/testId';

interface CalendarFormValues {
  name: string;
  base: string;
  added_text: string;
  removed_text: string;
  data_end: string;
  description: string;
}

/**
 * The order of the table: custom calendars first, then the library's loaded ones (with their data
 * range), then the rest of the library's; by name within each group. The ones a user works with
 * come before the long list of exchanges.
 */
export function sortCalendars(calendars: TradingCalendar[]): TradingCalendar[] {
  const group = (item: TradingCalendar) => (item.source === 'custom' ? 0 : item.data_end ? 1 : 2);
  return [...calendars].sort((a, b) => group(a) - group(b) || a.name.localeCompare(b.name));
}

/** One date per line (or separated by commas / spaces); blanks dropped. */
export function datesOf(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((day) => day.trim())
    .filter(Boolean);
}

export function CalendarsDrawer({ canEdit, onClose }: { canEdit: boolean; onClose: () => void }) {
  const { t } = useI18n();
  const act = useAction();
  const calendars = useCalendars();
  const [editing, setEditing] = useState<TradingCalendar | 'new'>();

  const columns: ColumnsType<TradingCalendar> = [
    { key: 'name', title: t('calendarName'), dataIndex: 'name' },
    {
      key: 'source',
      title: t('calendarSource'),
      width: 160,
      render: (_, item) =>
        item.source === 'custom' ? (
          <Tag color="blue">
            {t('calendarSourceCustom')} · {item.base}
          </Tag>
        ) : (
          <Tag>{t('calendarSourceBuiltin')}</Tag>
        ),
    },
    {
      key: 'data_end',
      title: t('calendarDataEnd'),
      width: 160,
      render: (_, item) =>
        item.data_end || <Typography.Text type="secondary">{t('calendarNotLoaded')}</Typography.Text>,
    },
    {
      key: 'actions',
      title: t('colActions'),
      width: 150,
      render: (_, item) =>
        canEdit && item.source === 'custom' ? (
          <Space size={0}>
            <Button
              type="link"
              size="small"
              {...testId(`calendar-edit-${item.name}`)}
              onClick={() => setEditing(item)}
            >
              {t('calendarEdit')}
            </Button>
            <Popconfirm
              title={t('calendarDelete')}
              onConfirm={async () => {
                await act(() => api.deleteCalendar(item.name), {
                  success: t('calendarDeleted'),
                  failure: t('calendarDelete'),
                });
                await calendars.reload(true);
              }}
            >
              <Button type="link" size="small" danger {...testId(`calendar-delete-${item.name}`)}>
                {t('calendarDelete')}
              </Button>
            </Popconfirm>
          </Space>
        ) : null,
    },
  ];

  return (
    <Drawer
      open
      width="min(900px, 96vw)"
      title={t('calendars')}
      onClose={onClose}
      data-testid="calendars-drawer"
    >
      <Space style={{ marginBottom: 12 }}>
        {canEdit && (
          <Button
            type="primary"
            icon={<PlusOutlined />}
            {...testId('calendar-create')}
            onClick={() => setEditing('new')}
          >
            {t('calendarCreate')}
          </Button>
        )}
        <Button icon={<ReloadOutlined />} onClick={() => void calendars.reload()}>
          {t('refresh')}
        </Button>
      </Space>
      <div style={{ marginBottom: 12 }}>
        <Typography.Text type="secondary">{t('calendarUncoveredPolicy')}</Typography.Text>
      </div>
      {calendars.error !== undefined && (
        <Typography.Text type="danger">{errorText(calendars.error, t('calendars'))}</Typography.Text>
      )}
      <Table<TradingCalendar>
        rowKey="name"
        size="small"
        columns={columns}
        dataSource={sortCalendars(calendars.data ?? [])}
        loading={calendars.loading}
        pagination={false}
        onRow={(item) => testId(`calendar-row-${item.name}`) as object}
      />
      {editing && (
        <CalendarModal
          calendar={editing === 'new' ? undefined : editing}
          builtins={(calendars.data ?? [])
            .filter((item) => item.source === 'builtin')
            .map((item) => item.name)}
          onClose={() => setEditing(undefined)}
          onSaved={() => {
            setEditing(undefined);
            void calendars.reload(true);
          }}
        />
      )}
    </Drawer>
  );
}

function CalendarModal({
  calendar,
  builtins,
  onClose,
  onSaved,
}: {
  calendar?: TradingCalendar;
  builtins: string[];
  onClose: () => void;
  onSaved: () => void;
}) {
  const { t } = useI18n();
  const act = useAction();
  const [form] = Form.useForm<CalendarFormValues>();
  const [saving, setSaving] = useState(false);
  const initial: CalendarFormValues = {
    name: calendar?.name ?? '',
    base: calendar?.base ?? 'XSHG',
    added_text: (calendar?.added_dates ?? []).join('\n'),
    removed_text: (calendar?.removed_dates ?? []).join('\n'),
    data_end: '',
    description: calendar?.description ?? '',
  };
  const submit = async () => {
    let values: CalendarFormValues;
    try {
      values = await form.validateFields();
    } catch {
      return;
    }
    const change: CalendarChange = {
      base: values.base,
      added_dates: datesOf(values.added_text),
      removed_dates: datesOf(values.removed_text),
      data_end: values.data_end.trim(),
      description: values.description,
    };
    setSaving(true);
    const saved = await act(
      () =>
        calendar
          ? api.updateCalendar(calendar.name, change)
          : api.createCalendar({ ...change, name: values.name.trim() }),
      { success: t('calendarSaved'), failure: t('calendarSaved') },
    );
    setSaving(false);
    if (saved) onSaved();
  };
  return (
    <Modal
      open
      title={calendar ? `${t('calendarEdit')} ${calendar.name}` : t('calendarCreate')}
      okText={t('ok')}
      cancelText={t('cancel')}
      confirmLoading={saving}
      okButtonProps={testId('calendar-form-submit')}
      onOk={() => void submit()}
      onCancel={onClose}
    >
      <Form<CalendarFormValues> form={form} layout="vertical" initialValues={initial}>
        <Form.Item name="name" label={t('calendarName')} rules={[{ required: true, whitespace: true }]}>
          <Input disabled={calendar !== undefined} data-testid="calendar-form-name" autoComplete="off" />
        </Form.Item>
        <Form.Item name="base" label={t('calendarBase')}>
          <Select
            showSearch
            data-testid="calendar-form-base"
            options={builtins.map((name) => ({ value: name, label: name }))}
          />
        </Form.Item>
        <Form.Item name="removed_text" label={t('calendarRemovedDates')} extra={t('calendarDatesExtra')}>
          <Input.TextArea rows={4} className="mono" data-testid="calendar-form-removed" />
        </Form.Item>
        <Form.Item name="added_text" label={t('calendarAddedDates')} extra={t('calendarDatesExtra')}>
          <Input.TextArea rows={3} className="mono" data-testid="calendar-form-added" />
        </Form.Item>
        <Form.Item name="data_end" label={t('calendarDataEndField')} extra="YYYY-MM-DD">
          <Input placeholder={calendar?.data_end} data-testid="calendar-form-data-end" />
        </Form.Item>
        <Form.Item name="description" label={t('calendarDescription')}>
          <Input.TextArea rows={2} />
        </Form.Item>
      </Form>
    </Modal>
  );
}
