// The visual workflow editor of the task form: a searchable palette of existing tasks (drag one
// onto the canvas or click +, or create a new sub-task in place), the canvas, the mode / failure
// policy / presets toolbar and the selected node's settings. It edits the JSON config text of the
// form (the JSON tab shows the same text), so the two never disagree.
//
// An edge is only added after the registry agreed: the candidate config goes to
// POST /tasks/{id}/workflow/validate, and an edge that closes a cycle is refused with the cycle's
// nodes marked. Other problems (missing or disabled tasks) are marked from the live validation.

import { PlusOutlined } from '@ant-design/icons';
import {
  Alert,
  App,
  Button,
  Empty,
  Form,
  Input,
  Modal,
  Select,
  Space,
  Spin,
  Tag,
  Tooltip,
  Typography,
} from 'antd';
import { useCallback, useMemo, useState } from 'react';

import { api, errorText } from '../api/client';
import type { JsonObject, Task, TaskType, WorkflowValidation } from '../api/types';
import { useDebouncedValue } from '../hooks/useDebouncedValue';
import { useRemote } from '../hooks/useRemote';
import { useI18n } from '../i18n';
import { DATA_SYNC_TYPES } from '../lib/dataSync';
import { CONFIG_EXAMPLES } from '../lib/examples';
import { parseConfig } from '../lib/json';
import {
  addDependency,
  addNode,
  applyPreset,
  configOf,
  configText,
  graphOf,
  removeDependency,
  removeNodes,
  renameNode,
  type FailurePolicy,
  type Preset,
  type WorkflowGraph,
  type WorkflowMode,
} from '../lib/workflowGraph';
import { testId } from '../lib/testId';
import { TASK_DRAG_TYPE, WorkflowCanvas, type CanvasNode } from './WorkflowCanvas';

interface Props {
  /** The workflow being edited; 0 for a new one. */
  workflowId: number;
  config: JsonObject | null;
  validation: WorkflowValidation | undefined;
  onChange: (text: string) => void;
}

const PRESETS: Preset[] = ['serial', 'parallel', 'mixed'];
const SUBTASK_TYPES: TaskType[] = ['example_task', 'common_task', 'manual_task', ...DATA_SYNC_TYPES];

export function WorkflowEditor({ workflowId, config, validation, onChange }: Props) {
  const { t } = useI18n();
  const { message } = App.useApp();
  const graph = useMemo(() => graphOf(config), [config]);
  const [selected, setSelected] = useState<number>();
  const [refused, setRefused] = useState<{ ids: Set<number>; message: string }>();
  const [layoutRequest, setLayoutRequest] = useState(0);
  const [creating, setCreating] = useState(false);
  const [known, setKnown] = useState(new Map<number, Task>());

  const change = (next: WorkflowGraph) => {
    setRefused(undefined);
    onChange(configText(next));
  };
  const add = (task: { id: number; name: string }) => change(addNode(graph, task.id, task.name));

  const connect = async (from: number, to: number) => {
    const candidate = addDependency(graph, from, to);
    try {
      const check = await api.validateWorkflow(workflowId, configOf(candidate));
      if (!check.valid && check.reason === 'WORKFLOW_CYCLE') {
        setRefused({ ids: new Set(check.task_ids ?? [from, to]), message: check.message });
        void message.error(t('wfEdgeRefused', { message: check.message }));
        return;
      }
    } catch (error) {
      void message.error(errorText(error, t('wfValidateFailed')));
      return;
    }
    change(candidate);
  };

  const invalid = useMemo(() => {
    if (refused) return refused.ids;
    return new Set(validation && !validation.valid ? (validation.task_ids ?? []) : []);
  }, [refused, validation]);

  const canvasNodes: CanvasNode[] = useMemo(
    () =>
      graph.nodes.map((node) => {
        const task = known.get(node.task_id);
        const label = node.name || task?.name || t('wfNodeUnnamed', { id: node.task_id });
        return {
          task_id: node.task_id,
          dependencies: node.dependencies,
          label,
          detail: `#${node.task_id}${task ? ` · ${t(`type_${task.task_type}`)}` : ''}`,
          title: `${label} (#${node.task_id})`,
        };
      }),
    [graph, known, t],
  );

  const remember = useCallback((tasks: Task[]) => {
    setKnown((current) => {
      const next = new Map(current);
      tasks.forEach((task) => next.set(task.id, task));
      return next;
    });
  }, []);

  const selectedNode = graph.nodes.find((n) => n.task_id === selected);

  return (
    <div className="wf-editor" data-testid="workflow-editor">
      <Palette
        workflowId={workflowId}
        inGraph={new Set(graph.nodes.map((n) => n.task_id))}
        onAdd={add}
        onLoaded={remember}
        onCreate={() => setCreating(true)}
      />
      <div className="wf-main">
        <Space wrap size={8} className="wf-toolbar">
          <Select<WorkflowMode>
            size="small"
            value={graph.workflow_type}
            data-testid="wf-type"
            style={{ width: 120 }}
            options={(['serial', 'parallel'] as const).map((mode) => ({
              value: mode,
              label: t(`wfMode_${mode}`),
            }))}
            onChange={(mode) => change({ ...graph, workflow_type: mode })}
          />
          <Select<FailurePolicy>
            size="small"
            value={graph.on_failure}
            data-testid="wf-on-failure"
            style={{ width: 150 }}
            options={(['stop', 'continue'] as const).map((policy) => ({
              value: policy,
              label: t(`wfOnFailure_${policy}`),
            }))}
            onChange={(policy) => change({ ...graph, on_failure: policy })}
          />
          <Typography.Text type="secondary">{t('wfPresets')}</Typography.Text>
          {PRESETS.map((preset) => (
            <Button
              key={preset}
              size="small"
              disabled={graph.nodes.length === 0}
              {...testId(`wf-preset-${preset}`)}
              onClick={() => {
                change(applyPreset(graph, preset));
                setLayoutRequest((n) => n + 1);
              }}
            >
              {t(`wfPreset_${preset}`)}
            </Button>
          ))}
        </Space>
        {refused && (
          <Alert
            type="error"
            showIcon
            data-testid="wf-edge-refused"
            message={t('wfEdgeRefused', { message: refused.message })}
          />
        )}
        {graph.nodes.length === 0 && (
          <Typography.Text type="secondary" data-testid="wf-empty-hint">
            {t('wfEmptyHint')}
          </Typography.Text>
        )}
        <WorkflowCanvas
          mode="edit"
          nodes={canvasNodes}
          invalid={invalid}
          layoutRequest={layoutRequest}
          height={380}
          onConnect={(from, to) => void connect(from, to)}
          onDropTask={(taskId, name) => add({ id: taskId, name })}
          onDelete={(taskIds, edges) => {
            let next = removeNodes(graph, taskIds);
            for (const edge of edges) next = removeDependency(next, edge.from, edge.to);
            change(next);
          }}
          onSelect={setSelected}
        />
        {selectedNode && (
          <Space wrap className="wf-node-settings" data-testid="wf-node-settings">
            <Typography.Text strong>#{selectedNode.task_id}</Typography.Text>
            <Input
              size="small"
              style={{ width: 220 }}
              addonBefore={t('wfNodeName')}
              value={selectedNode.name}
              data-testid="wf-node-name"
              onChange={(event) => change(renameNode(graph, selectedNode.task_id, event.target.value))}
            />
            <Typography.Text type="secondary">{t('wfNodeDependsOn')}</Typography.Text>
            {selectedNode.dependencies.length === 0
              ? '—'
              : selectedNode.dependencies.map((dep) => (
                  <Tag
                    key={dep}
                    closable
                    onClose={() => change(removeDependency(graph, dep, selectedNode.task_id))}
                  >
                    #{dep}
                  </Tag>
                ))}
            <Button
              size="small"
              danger
              {...testId('wf-node-remove')}
              onClick={() => {
                change(removeNodes(graph, [selectedNode.task_id]));
                setSelected(undefined);
              }}
            >
              {t('wfNodeRemove')}
            </Button>
          </Space>
        )}
      </div>
      {creating && (
        <NewSubtaskModal
          onClose={() => setCreating(false)}
          onCreated={(task) => {
            setCreating(false);
            remember([task]);
            add(task);
          }}
        />
      )}
    </div>
  );
}

interface PaletteProps {
  workflowId: number;
  inGraph: ReadonlySet<number>;
  onAdd: (task: Task) => void;
  onLoaded: (tasks: Task[]) => void;
  onCreate: () => void;
}

function Palette({ workflowId, inGraph, onAdd, onLoaded, onCreate }: PaletteProps) {
  const { t } = useI18n();
  const [search, setSearch] = useState('');
  const name = useDebouncedValue(search.trim(), 300);
  const fetcher = useCallback(async () => {
    const list = await api.listTasks({ skip: 0, limit: 50, name: name || undefined, include_children: true });
    onLoaded(list.tasks);
    return list;
  }, [name, onLoaded]);
  const { data, loading } = useRemote(fetcher);
  const tasks = (data?.tasks ?? []).filter((task) => task.id !== workflowId);
  return (
    <div className="wf-palette" data-testid="wf-palette">
      <Input.Search
        size="small"
        allowClear
        placeholder={t('wfPaletteSearch')}
        value={search}
        data-testid="wf-palette-search"
        onChange={(event) => setSearch(event.target.value)}
      />
      <Button
        size="small"
        type="dashed"
        block
        icon={<PlusOutlined />}
        {...testId('wf-new-subtask')}
        onClick={onCreate}
      >
        {t('wfNewSubtask')}
      </Button>
      <div className="wf-palette-list">
        {loading && !data ? (
          <Spin size="small" />
        ) : tasks.length === 0 ? (
          <Empty image={Empty.PRESENTED_IMAGE_SIMPLE} description={t('wfPaletteEmpty')} />
        ) : (
          tasks.map((task) => (
            <div
              key={task.id}
              className={`wf-palette-item${inGraph.has(task.id) ? ' wf-palette-item-used' : ''}`}
              data-testid={`palette-task-${task.id}`}
              draggable={!inGraph.has(task.id)}
              title={t('wfPaletteDrag')}
              onDragStart={(event) => {
                event.dataTransfer.setData(
                  TASK_DRAG_TYPE,
                  JSON.stringify({ task_id: task.id, name: task.name }),
                );
                event.dataTransfer.effectAllowed = 'copy';
              }}
            >
              <span className="wf-palette-name">
                {task.name}
                <Typography.Text type="secondary"> #{task.id}</Typography.Text>
                {!task.enabled && <Tag className="wf-palette-tag">{t('disabledTag')}</Tag>}
              </span>
              <Tooltip title={t('wfPaletteAdd')}>
                <Button
                  size="small"
                  type="text"
                  icon={<PlusOutlined />}
                  disabled={inGraph.has(task.id)}
                  aria-label={t('wfPaletteAdd')}
                  {...testId(`palette-add-${task.id}`)}
                  onClick={() => onAdd(task)}
                />
              </Tooltip>
            </div>
          ))
        )}
      </div>
    </div>
  );
}

interface NewSubtaskValues {
  name: string;
  task_type: TaskType;
  config_text: string;
}

/** "Create a new sub-task here": an enabled task without a schedule, added to the canvas. */
function NewSubtaskModal({ onClose, onCreated }: { onClose: () => void; onCreated: (task: Task) => void }) {
  const { t } = useI18n();
  const { message } = App.useApp();
  const [form] = Form.useForm<NewSubtaskValues>();
  const [saving, setSaving] = useState(false);
  const submit = async () => {
    let values: NewSubtaskValues;
    try {
      values = await form.validateFields();
    } catch {
      return;
    }
    const parsed = parseConfig(values.config_text);
    setSaving(true);
    try {
      const task = await api.createTask({
        name: values.name.trim(),
        task_type: values.task_type,
        config: parsed.ok && parsed.value ? parsed.value : {},
        enabled: true,
      });
      void message.success(t('taskCreated'));
      onCreated(task);
    } catch (error) {
      void message.error(errorText(error, t('createFailed')));
    } finally {
      setSaving(false);
    }
  };
  return (
    <Modal
      open
      title={t('wfNewSubtask')}
      okText={t('create')}
      cancelText={t('cancel')}
      confirmLoading={saving}
      okButtonProps={testId('new-subtask-submit')}
      onOk={() => void submit()}
      onCancel={onClose}
    >
      <Form<NewSubtaskValues>
        form={form}
        layout="vertical"
        initialValues={{ name: '', task_type: 'example_task', config_text: CONFIG_EXAMPLES[0]!.text }}
      >
        <Form.Item
          name="name"
          label={t('fieldName')}
          rules={[{ required: true, whitespace: true, message: t('fieldNameRequired') }]}
        >
          <Input data-testid="new-subtask-name" />
        </Form.Item>
        <Form.Item name="task_type" label={t('fieldType')}>
          <Select<TaskType>
            data-testid="new-subtask-type"
            options={SUBTASK_TYPES.map((type) => ({ value: type, label: t(`type_${type}`) }))}
          />
        </Form.Item>
        <Form.Item
          name="config_text"
          label={t('fieldConfig')}
          rules={[
            {
              validator: (_rule, value: string | undefined) =>
                parseConfig(value ?? '').ok
                  ? Promise.resolve()
                  : Promise.reject(new Error(t('configNotObject'))),
            },
          ]}
        >
          <Input.TextArea rows={5} className="mono" spellCheck={false} data-testid="new-subtask-config" />
        </Form.Item>
      </Form>
    </Modal>
  );
}
