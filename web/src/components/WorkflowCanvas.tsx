// The one workflow canvas (@xyflow/react), in two modes:
// - `edit`: nodes can be dragged, dropped in from the palette (HTML drag and drop of a task),
//   connected (an edge from A's bottom handle to B's top handle = B depends on A) and deleted
//   with Delete or Backspace. The canvas only reports what the user did; the editor owns the
//   config and decides (e.g. refuses an edge that closes a cycle).
// - `run`: read-only, every node coloured by the status of its run in a workflow execution.
// Positions live here, not in the config: dagre lays everything out on first show and on
// "auto-layout"; a node added later lands where it was dropped (or below the others).

import {
  Background,
  BaseEdge,
  Controls,
  getBezierPath,
  Handle,
  MarkerType,
  Panel,
  Position,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type EdgeProps,
  type Node,
  type NodeChange,
  type NodeProps,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { ApartmentOutlined } from '@ant-design/icons';
import { Button, Tooltip } from 'antd';
import { useCallback, useEffect, useRef, useState, type DragEvent } from 'react';

import type { ExecutionStatus } from '../api/types';
import { useI18n } from '../i18n';
import { edgesOf, layoutGraph, NODE_SIZE } from '../lib/workflowGraph';

/** Node colours by run status; `none` = no run yet (and every node while editing). */
export const NODE_COLORS: Record<ExecutionStatus | 'none', { fill: string; stroke: string; text: string }> = {
  none: { fill: '#ffffff', stroke: '#d9d9d9', text: '#262626' },
  pending: { fill: '#f0f5ff', stroke: '#adc6ff', text: '#1d39c4' },
  running: { fill: '#1677ff', stroke: '#0958d9', text: '#ffffff' },
  success: { fill: '#52c41a', stroke: '#389e0d', text: '#ffffff' },
  failed: { fill: '#ff4d4f', stroke: '#cf1322', text: '#ffffff' },
  terminated: { fill: '#fa8c16', stroke: '#d46b08', text: '#ffffff' },
  skipped: { fill: '#d9d9d9', stroke: '#bfbfbf', text: '#595959' },
};

export interface CanvasNode {
  task_id: number;
  dependencies: readonly number[];
  label: string;
  /** Second line: `#id · status` in run mode, `#id · type` while editing. */
  detail: string;
  /** Tooltip (native title). */
  title?: string;
  status?: ExecutionStatus | 'none';
}

/** MIME type of a task dragged from the palette: JSON `{task_id, name}`. */
export const TASK_DRAG_TYPE = 'application/x-zq-task';

interface NodeData extends Record<string, unknown> {
  node: CanvasNode;
  invalid: boolean;
  editable: boolean;
}

function TaskNode({ data, selected }: NodeProps<Node<NodeData>>) {
  const { node, invalid, editable } = data;
  const status = node.status ?? 'none';
  const colors = NODE_COLORS[status] ?? NODE_COLORS.none;
  return (
    <div
      className={`wf-node${invalid ? ' wf-node-invalid' : ''}${selected ? ' wf-node-selected' : ''}`}
      data-testid={`dag-node-${node.task_id}`}
      data-status={status}
      data-invalid={invalid ? 'true' : 'false'}
      title={node.title}
      style={{
        width: NODE_SIZE.width,
        height: NODE_SIZE.height,
        background: colors.fill,
        borderColor: invalid ? '#ff4d4f' : colors.stroke,
        color: colors.text,
      }}
    >
      <Handle
        type="target"
        position={Position.Top}
        isConnectable={editable}
        className={editable ? undefined : 'wf-handle-hidden'}
        data-testid={`dag-in-${node.task_id}`}
      />
      <div className="wf-node-label">{node.label}</div>
      <div className="wf-node-detail">{node.detail}</div>
      <Handle
        type="source"
        position={Position.Bottom}
        isConnectable={editable}
        className={editable ? undefined : 'wf-handle-hidden'}
        data-testid={`dag-out-${node.task_id}`}
      />
    </div>
  );
}

interface EdgeData extends Record<string, unknown> {
  from: number;
  to: number;
  invalid: boolean;
}

function DependencyEdge(props: EdgeProps<Edge<EdgeData>>) {
  const [path] = getBezierPath(props);
  const invalid = props.data?.invalid ?? false;
  return (
    <g
      data-testid={`dag-edge-${props.data?.from}-${props.data?.to}`}
      data-invalid={invalid ? 'true' : 'false'}
    >
      <BaseEdge
        path={path}
        markerEnd={props.markerEnd}
        style={{ stroke: invalid ? '#ff4d4f' : props.selected ? '#1677ff' : '#8c8c8c', strokeWidth: 1.5 }}
      />
    </g>
  );
}

const NODE_TYPES = { task: TaskNode };
const EDGE_TYPES = { dependency: DependencyEdge };

interface Props {
  mode: 'edit' | 'run';
  nodes: readonly CanvasNode[];
  /** Nodes to mark as at fault; edges between two of them are marked too. */
  invalid?: ReadonlySet<number>;
  /** Bumped by the editor to lay everything out again (after a preset). */
  layoutRequest?: number;
  height?: number;
  onConnect?: (from: number, to: number) => void;
  onDelete?: (taskIds: number[], edges: Array<{ from: number; to: number }>) => void;
  onDropTask?: (taskId: number, name: string) => void;
  onSelect?: (taskId: number | undefined) => void;
}

type FlowNode = Node<NodeData>;
type FlowEdge = Edge<EdgeData>;

function CanvasInner({
  mode,
  nodes,
  invalid,
  layoutRequest = 0,
  height = 420,
  onConnect,
  onDelete,
  onDropTask,
  onSelect,
}: Props) {
  const { t } = useI18n();
  const flow = useReactFlow<FlowNode, FlowEdge>();
  const editable = mode === 'edit';
  const [flowNodes, setFlowNodes] = useState<FlowNode[]>([]);
  const [flowEdges, setFlowEdges] = useState<FlowEdge[]>([]);
  // Where a dropped task goes once the editor has added it.
  const dropAt = useRef(new Map<number, { x: number; y: number }>());
  const laidOut = useRef(-1);

  useEffect(() => {
    const marked = invalid ?? new Set<number>();
    const relayout = laidOut.current !== layoutRequest;
    laidOut.current = layoutRequest;
    setFlowNodes((previous) => {
      const known = new Map(previous.map((n) => [n.id, n]));
      const fresh = relayout || previous.length === 0 ? layoutGraph(nodes) : undefined;
      let below = Math.max(0, ...previous.map((n) => n.position.y + NODE_SIZE.height + 40));
      return nodes.map((node) => {
        const id = String(node.task_id);
        const old = known.get(id);
        let position = fresh?.get(node.task_id) ?? old?.position;
        if (!position) {
          position = dropAt.current.get(node.task_id) ?? { x: 16, y: below };
          below = Math.max(below, position.y + NODE_SIZE.height + 40);
        }
        dropAt.current.delete(node.task_id);
        return {
          ...(old ?? {}),
          id,
          type: 'task',
          position,
          data: { node, invalid: marked.has(node.task_id), editable },
          draggable: editable,
          connectable: editable,
          deletable: editable,
        };
      });
    });
    setFlowEdges((previous) => {
      const selected = new Set(previous.filter((e) => e.selected).map((e) => e.id));
      return edgesOf(nodes).map(({ from, to }) => {
        const id = `${from}-${to}`;
        return {
          id,
          source: String(from),
          target: String(to),
          type: 'dependency',
          selected: selected.has(id),
          deletable: editable,
          markerEnd: { type: MarkerType.ArrowClosed, width: 18, height: 18 },
          data: { from, to, invalid: marked.has(from) && marked.has(to) },
        };
      });
    });
    if (relayout) window.requestAnimationFrame(() => void flow.fitView({ padding: 0.2 }));
  }, [nodes, invalid, layoutRequest, editable, flow]);

  const onNodesChange = useCallback((changes: NodeChange<FlowNode>[]) => {
    setFlowNodes((current) =>
      applyNodeChanges(
        changes.filter((c) => c.type !== 'remove'),
        current,
      ),
    );
  }, []);
  const onEdgesChange = useCallback((changes: EdgeChange<FlowEdge>[]) => {
    setFlowEdges((current) =>
      applyEdgeChanges(
        changes.filter((c) => c.type !== 'remove'),
        current,
      ),
    );
  }, []);

  const connect = (connection: Connection) => {
    if (connection.source && connection.target)
      onConnect?.(Number(connection.source), Number(connection.target));
  };

  const drop = (event: DragEvent) => {
    const raw = event.dataTransfer.getData(TASK_DRAG_TYPE);
    if (!raw || !onDropTask) return;
    event.preventDefault();
    const task = JSON.parse(raw) as { task_id: number; name: string };
    const at = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
    dropAt.current.set(task.task_id, { x: at.x - NODE_SIZE.width / 2, y: at.y - NODE_SIZE.height / 2 });
    onDropTask(task.task_id, task.name);
  };

  return (
    <div
      className="wf-canvas"
      data-testid="dag-view"
      data-mode={mode}
      style={{ height }}
      onDragOver={(event) => {
        if (editable) {
          event.preventDefault();
          event.dataTransfer.dropEffect = 'copy';
        }
      }}
      onDrop={drop}
    >
      <ReactFlow<FlowNode, FlowEdge>
        nodes={flowNodes}
        edges={flowEdges}
        nodeTypes={NODE_TYPES}
        edgeTypes={EDGE_TYPES}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={connect}
        onDelete={({ nodes: gone, edges }) =>
          onDelete?.(
            gone.map((n) => Number(n.id)),
            edges.map((e) => ({ from: Number(e.source), to: Number(e.target) })),
          )
        }
        onSelectionChange={({ nodes: picked }) =>
          onSelect?.(picked.length === 1 ? Number(picked[0]!.id) : undefined)
        }
        deleteKeyCode={editable ? ['Delete', 'Backspace'] : null}
        nodesDraggable={editable}
        nodesConnectable={editable}
        elementsSelectable={editable}
        fitView
        fitViewOptions={{ padding: 0.2 }}
        minZoom={0.2}
        maxZoom={2}
        proOptions={{ hideAttribution: true }}
      >
        <Background gap={16} />
        <Controls showInteractive={false} />
        <Panel position="top-right">
          <Tooltip title={t('wfAutoLayout')}>
            <Button
              size="small"
              icon={<ApartmentOutlined />}
              data-testid="wf-auto-layout"
              aria-label={t('wfAutoLayout')}
              onClick={() => {
                const positions = layoutGraph(nodes);
                setFlowNodes((current) =>
                  current.map((n) => ({ ...n, position: positions.get(Number(n.id)) ?? n.position })),
                );
                window.requestAnimationFrame(() => void flow.fitView({ padding: 0.2 }));
              }}
            />
          </Tooltip>
        </Panel>
      </ReactFlow>
    </div>
  );
}

export function WorkflowCanvas(props: Props) {
  return (
    <ReactFlowProvider>
      <CanvasInner {...props} />
    </ReactFlowProvider>
  );
}
