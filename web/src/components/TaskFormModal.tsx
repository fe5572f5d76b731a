// Create / edit / copy in one form. The 调度方式 radio picks one of cron / interval / one-time (or
// none); manual tasks have no schedule. Edit sends only the changed fields (null clears).

import { DownOutlined } from '@ant-design/icons';
import {
  App,
  Button,
  Col,
  DatePicker,
  Dropdown,
  Form,
  Input,
  InputNumber,
  Modal,
  Radio,
  Row,
  Select,
  Switch,
  Tabs,
  Typography,
} from 'antd';
import dayjs, { type Dayjs } from 'dayjs';
import { useMemo, useState } from 'react';

import { api } from '../api/client';
import type { ConcurrencyPolicy, Task, TaskType } from '../api/types';
import { useCurrentUser } from '../auth/AuthProvider';
import { useAction } from '../hooks/useAction';
import { useCalendars } from '../hooks/useCalendars';
import { useWorkflowValidation } from '../hooks/useWorkflowValidation';
import { useI18n } from '../i18n';
import { TaskAlertsSection } from './AlertsDrawer';
import { isDataSyncType } from '../lib/dataSync';
import { CONFIG_EXAMPLES } from '../lib/examples';
import { TIME_FORMAT } from '../lib/format';
import { parseConfig, type ParseResult } from '../lib/json';
import {
  buildCreatePayload,
  buildUpdatePayload,
  initialValues,
  invalidTag,
  MAX_RETRIES_LIMIT,
  MAX_TAGS,
  RETRY_INTERVAL_LIMIT,
  type FormMode,
  type ScheduleMode,
  type TaskFormValues,
} from '../lib/taskForm';
import { testId } from '../lib/testId';
import { timezoneOptions } from '../lib/timezones';
import { CronPreview } from './CronPreview';
import { DataSyncFields } from './DataSyncFields';
import { TASK_TYPES } from './tags';
import { WorkflowEditor } from './WorkflowEditor';

interface Props {
  mode: FormMode;
  task?: Task;
  onClose: () => void;
  onSaved: () => void;
}

const SCHEDULE_MODES: ScheduleMode[] = ['cron', 'interval', 'once', 'none'];
const POLICIES: ConcurrencyPolicy[] = ['forbid', 'allow', 'replace'];

export function TaskFormModal({ mode, task, onClose, onSaved }: Props) {
  const { t } = useI18n();
  const { user } = useCurrentUser();
  const { message } = App.useApp();
  const act = useAction();
  const [form] = Form.useForm<TaskFormValues>();
  const [saving, setSaving] = useState(false);
  const initial = useMemo(() => initialValues(mode, task), [mode, task]);
  const timezones = useMemo(() => timezoneOptions(initial.timezone), [initial.timezone]);

  const taskType = Form.useWatch('task_type', form) ?? initial.task_type;
  const scheduleMode = Form.useWatch('schedule_mode', form) ?? initial.schedule_mode;
  const cronExpression = Form.useWatch('cron_expression', form) ?? initial.cron_expression;
  const timezone = Form.useWatch('timezone', form) ?? initial.timezone;
  const calendar = Form.useWatch('calendar', form) ?? initial.calendar;
  const calendarShift = Form.useWatch('calendar_shift', form) ?? initial.calendar_shift;
  const calendars = useCalendars();
  const configText = Form.useWatch('config_text', form) ?? initial.config_text;
  const parsed = useMemo(() => parseConfig(configText), [configText]);
  const workflowCheck = useWorkflowValidation(
    mode === 'edit' ? task?.id : undefined,
    parsed.ok ? parsed.value : null,
    taskType === 'workflow',
  );
  const isManual = taskType === 'manual_task';
  const isWorkflow = taskType === 'workflow';
  const syncType = isDataSyncType(taskType) ? taskType : null;
  const [configTab, setConfigTab] = useState<'visual' | 'json'>('visual');

  const configError = (result: ParseResult): string | undefined => {
    if (result.ok) return undefined;
    if (result.kind === 'not_object') return t('configNotObject');
    return t('configInvalid', { line: result.line, column: result.column, reason: result.reason });
  };

  const submit = async () => {
    try {
      await form.validateFields();
    } catch {
      return;
    }
    const values: TaskFormValues = { ...initial, ...(form.getFieldsValue(true) as Partial<TaskFormValues>) };
    let call: () => Promise<Task>;
    let texts: { success: string; failure: string };
    if (mode === 'edit' && task) {
      const changes = buildUpdatePayload(initial, values);
      if (Object.keys(changes).length === 0) {
        void message.info(t('noChanges'));
        onClose();
        return;
      }
      call = () => api.updateTask(task.id, changes);
      texts = { success: t('taskUpdated'), failure: t('updateFailed') };
    } else {
      const payload = buildCreatePayload(values);
      call = () => api.createTask(payload);
      texts = { success: t('taskCreated'), failure: t('createFailed') };
    }
    setSaving(true);
    const saved = await act(call, texts);
    setSaving(false);
    if (saved) onSaved();
  };

  const jsonEditor = (
    <>
      <Dropdown
        trigger={['click']}
        menu={{
          items: CONFIG_EXAMPLES.map((example) => ({
            key: example.key,
            label: <span data-testid={`config-example-${example.key}`}>{t(example.label)}</span>,
          })),
          onClick: ({ key }) => {
            const example = CONFIG_EXAMPLES.find((e) => e.key === key);
            if (example) form.setFieldValue('config_text', example.text);
          },
        }}
      >
        <Button size="small" type="link" className="config-examples" data-testid="config-examples">
          {t('configExamples')} <DownOutlined />
        </Button>
      </Dropdown>
      <Form.Item
        name="config_text"
        noStyle
        rules={[
          {
            validator: (_rule, value: string | undefined) => {
              const error = configError(parseConfig(value ?? ''));
              return error ? Promise.reject(new Error(error)) : Promise.resolve();
            },
          },
        ]}
      >
        <Input.TextArea rows={9} className="mono" spellCheck={false} data-testid="form-config" />
      </Form.Item>
    </>
  );

  const title =
    mode === 'edit'
      ? t('editTitle', { name: task?.name ?? '' })
      : mode === 'copy'
        ? t('copyTitle')
        : t('createTitle');

  return (
    <Modal
      open
      title={title}
      width={isWorkflow ? 1180 : 860}
      maskClosable={false}
      okText={mode === 'edit' ? t('update') : t('create')}
      cancelText={t('cancel')}
      confirmLoading={saving}
      okButtonProps={testId('form-submit')}
      cancelButtonProps={testId('form-cancel')}
      onOk={() => void submit()}
      onCancel={onClose}
    >
      <Form<TaskFormValues> form={form} layout="vertical" initialValues={initial} data-testid="task-form">
        <Row gutter={16}>
          <Col span={14}>
            <Form.Item
              name="name"
              label={t('fieldName')}
              rules={[
                { required: true, whitespace: true, message: t('fieldNameRequired') },
                { max: 100, message: t('fieldNameTooLong') },
              ]}
            >
              <Input placeholder={t('fieldNamePlaceholder')} data-testid="form-name" />
            </Form.Item>
          </Col>
          <Col span={10}>
            <Form.Item
              name="task_type"
              label={t('fieldType')}
              rules={[{ required: true, message: t('fieldTypeRequired') }]}
            >
              <Select<TaskType>
                disabled={mode === 'edit'}
                data-testid="form-task-type"
                options={TASK_TYPES.map((type) => ({ value: type, label: t(`type_${type}`) }))}
                onChange={(type) => {
                  if (type === 'manual_task') form.setFieldValue('schedule_mode', 'none');
                }}
              />
            </Form.Item>
          </Col>
        </Row>

        {isManual ? (
          <Typography.Paragraph type="secondary" data-testid="manual-no-schedule">
            {t('manualNoSchedule')}
          </Typography.Paragraph>
        ) : (
          <>
            <Row gutter={16}>
              <Col span={14}>
                <Form.Item name="schedule_mode" label={t('fieldScheduleMode')}>
                  <Radio.Group data-testid="form-schedule-mode">
                    {SCHEDULE_MODES.map((m) => (
                      <Radio key={m} value={m} data-testid={`form-schedule-mode-${m}`}>
                        {t(`mode_${m}`)}
                      </Radio>
                    ))}
                  </Radio.Group>
                </Form.Item>
              </Col>
              <Col span={10}>
                <Form.Item name="timezone" label={t('fieldTimezone')} tooltip={t('fieldTimezoneExtra')}>
                  <Select
                    showSearch
                    data-testid="form-timezone"
                    options={timezones.map((zone) => ({ value: zone, label: zone }))}
                  />
                </Form.Item>
              </Col>
            </Row>
            {scheduleMode === 'cron' && (
              <Form.Item
                label={t('fieldCron')}
                required
                extra={
                  <>
                    <div>{t('fieldCronExtra')}</div>
                    <CronPreview
                      expression={cronExpression}
                      timezone={timezone}
                      calendar={calendar}
                      calendarShift={calendarShift ?? 0}
                    />
                  </>
                }
              >
                <Form.Item
                  name="cron_expression"
                  noStyle
                  rules={[{ required: true, whitespace: true, message: t('fieldCronRequired') }]}
                >
                  <Input placeholder={t('fieldCronPlaceholder')} data-testid="form-cron" className="mono" />
                </Form.Item>
              </Form.Item>
            )}
            {scheduleMode === 'cron' && (
              <Row gutter={16}>
                <Col span={10}>
                  <Form.Item
                    name="calendar"
                    label={t('fieldCalendar')}
                    tooltip={`${t('fieldCalendarExtra')} — ${t('calendarUncoveredPolicy')}`}
                  >
                    <Select
                      showSearch
                      data-testid="form-calendar"
                      loading={calendars.loading}
                      options={[
                        { value: '', label: t('fieldCalendarNone') },
                        ...(calendars.data ?? []).map((item) => ({
                          value: item.name,
                          label: item.data_end
                            ? `${item.name} (${t('calendarDataEnd')} ${item.data_end})`
                            : item.name,
                        })),
                      ]}
                    />
                  </Form.Item>
                </Col>
                {calendar && (
                  <Col span={6}>
                    <Form.Item
                      name="calendar_shift"
                      label={t('fieldCalendarShift')}
                      tooltip={t('fieldCalendarShiftExtra')}
                    >
                      <InputNumber min={-31} max={31} precision={0} data-testid="form-calendar-shift" />
                    </Form.Item>
                  </Col>
                )}
                {calendar && (
                  <Col span={8}>
                    <Form.Item name="calendar_holidays" label={t('fieldCalendarHolidays')}>
                      <Select
                        data-testid="form-calendar-holidays"
                        options={[
                          { value: 'silent', label: t('calendarHolidaysSilent') },
                          { value: 'record', label: t('calendarHolidaysRecord') },
                        ]}
                      />
                    </Form.Item>
                  </Col>
                )}
              </Row>
            )}
            {scheduleMode === 'interval' && (
              <Form.Item
                name="interval_seconds"
                label={t('fieldInterval')}
                rules={[{ required: true, message: t('fieldIntervalRequired') }]}
              >
                <InputNumber
                  min={1}
                  precision={0}
                  style={{ width: '100%' }}
                  placeholder={t('fieldIntervalPlaceholder')}
                  data-testid="form-interval"
                />
              </Form.Item>
            )}
            {scheduleMode === 'once' && (
              // DatePicker drops data-* props: the test id sits on a wrapper (its <input> is inside).
              <div data-testid="form-run-at">
                <Form.Item
                  name="run_at"
                  label={t('fieldRunAt')}
                  rules={[{ required: true, message: t('fieldRunAtRequired') }]}
                  getValueProps={(value: string | null) => ({ value: value ? dayjs(value) : null })}
                  normalize={(value: Dayjs | null) => (value ? value.toISOString() : null)}
                >
                  <DatePicker showTime format={TIME_FORMAT} style={{ width: '100%' }} />
                </Form.Item>
              </div>
            )}
          </>
        )}

        <Form.Item name="description" label={t('fieldDescription')}>
          <Input.TextArea
            rows={2}
            placeholder={t('fieldDescriptionPlaceholder')}
            data-testid="form-description"
          />
        </Form.Item>

        <Form.Item
          name="tags"
          label={t('fieldTags')}
          rules={[
            {
              validator: async (_, tags: string[] | undefined) => {
                const bad = invalidTag(tags ?? []);
                if (bad !== undefined) throw new Error(t('fieldTagInvalid', { tag: bad }));
                if ((tags?.length ?? 0) > MAX_TAGS) throw new Error(t('fieldTagsTooMany', { max: MAX_TAGS }));
              },
            },
          ]}
        >
          <Select
            mode="tags"
            open={false}
            suffixIcon={null}
            tokenSeparators={[',', ' ']}
            placeholder={t('fieldTagsPlaceholder')}
            data-testid="form-tags"
          />
        </Form.Item>

        <Form.Item
          label={t('fieldConfig')}
          validateStatus={parsed.ok ? undefined : 'error'}
          help={parsed.ok ? undefined : <span data-testid="config-error">{configError(parsed)}</span>}
          extra={
            workflowCheck && (
              <Typography.Text
                type={workflowCheck.valid ? 'success' : 'danger'}
                data-testid="workflow-validation"
              >
                {t('workflowValid')}: {workflowCheck.valid ? t('workflowConfigOk') : workflowCheck.message}
              </Typography.Text>
            )
          }
        >
          {isWorkflow ? (
            <Tabs
              size="small"
              activeKey={configTab}
              onChange={(key) => setConfigTab(key as 'visual' | 'json')}
              items={[
                {
                  key: 'visual',
                  label: <span data-testid="config-tab-visual">{t('wfTabVisual')}</span>,
                  children: parsed.ok ? (
                    <WorkflowEditor
                      workflowId={mode === 'edit' ? (task?.id ?? 0) : 0}
                      config={parsed.value}
                      validation={workflowCheck}
                      onChange={(text) => form.setFieldValue('config_text', text)}
                    />
                  ) : (
                    <Typography.Text type="danger">{t('wfJsonInvalid')}</Typography.Text>
                  ),
                },
                {
                  key: 'json',
                  label: <span data-testid="config-tab-json">{t('wfTabJson')}</span>,
                  forceRender: true,
                  children: jsonEditor,
                },
              ]}
            />
          ) : syncType ? (
            <Tabs
              size="small"
              activeKey={configTab}
              onChange={(key) => setConfigTab(key as 'visual' | 'json')}
              items={[
                {
                  key: 'visual',
                  label: <span data-testid="config-tab-form">{t('syncTabForm')}</span>,
                  children: parsed.ok ? (
                    <DataSyncFields
                      type={syncType}
                      config={parsed.value}
                      onChange={(text) => form.setFieldValue('config_text', text)}
                    />
                  ) : (
                    <Typography.Text type="danger">{t('syncJsonInvalid')}</Typography.Text>
                  ),
                },
                {
                  key: 'json',
                  label: <span data-testid="config-tab-json">{t('wfTabJson')}</span>,
                  forceRender: true,
                  children: jsonEditor,
                },
              ]}
            />
          ) : (
            jsonEditor
          )}
        </Form.Item>

        <Row gutter={16}>
          <Col span={6}>
            <Form.Item name="max_retries" label={t('fieldMaxRetries')} rules={[{ required: true }]}>
              <InputNumber
                min={0}
                max={MAX_RETRIES_LIMIT}
                precision={0}
                style={{ width: '100%' }}
                data-testid="form-max-retries"
              />
            </Form.Item>
          </Col>
          <Col span={6}>
            <Form.Item name="retry_interval" label={t('fieldRetryInterval')} rules={[{ required: true }]}>
              <InputNumber
                min={0}
                max={RETRY_INTERVAL_LIMIT}
                precision={0}
                style={{ width: '100%' }}
                data-testid="form-retry-interval"
              />
            </Form.Item>
          </Col>
          <Col span={6}>
            <Form.Item name="timeout_seconds" label={t('fieldTimeout')}>
              <InputNumber
                min={0}
                precision={0}
                style={{ width: '100%' }}
                placeholder={t('fieldTimeoutPlaceholder')}
                data-testid="form-timeout"
              />
            </Form.Item>
          </Col>
          <Col span={6}>
            <Form.Item name="concurrency_policy" label={t('fieldConcurrency')}>
              <Select<ConcurrencyPolicy>
                data-testid="form-concurrency"
                options={POLICIES.map((policy) => ({ value: policy, label: t(`policy_${policy}`) }))}
              />
            </Form.Item>
          </Col>
        </Row>

        {mode === 'edit' && task && user.role === 'admin' && (
          <TaskAlertsSection taskId={task.id} taskName={task.name} />
        )}

        {mode !== 'edit' && (
          <Form.Item name="enabled" label={t('fieldEnabled')} valuePropName="checked">
            <Switch data-testid="form-enabled" />
          </Form.Item>
        )}
      </Form>
    </Modal>
  );
}
