// A workflow config as the editor sees it (pure; unit-tested). The JSON config stays the one source
// of truth: the editor reads it with `graphOf`, every edit is a function from graph to graph, and
// `configOf` writes it back, keeping keys the editor does not know (max_parallelism, …). Node
// positions are not part of the config: `layoutGraph` lays the nodes out with dagre.
//
// Validity is not decided here: the registry's rules (cycles, missing or disabled tasks) are asked
// of POST /tasks/{id}/workflow/validate, which names the nodes at fault.

import dagre from '@dagrejs/dagre';

import type { JsonObject, JsonValue } from '../api/types';

export type WorkflowMode = 'serial' | 'parallel';
export type FailurePolicy = 'stop' | 'continue';
export type Preset = 'serial' | 'parallel' | 'mixed';

export interface GraphNode {
  task_id: number;
  name: string;
  dependencies: number[];
}

export interface WorkflowGraph {
  workflow_type: WorkflowMode;
  on_failure: FailurePolicy;
  nodes: GraphNode[];
  /** Keys of the config the editor leaves as they are. */
  rest: JsonObject;
}

export const EMPTY_GRAPH: WorkflowGraph = {
  workflow_type: 'parallel',
  on_failure: 'stop',
  nodes: [],
  rest: {},
};

const asInt = (value: JsonValue | undefined): number | undefined =>
  typeof value === 'number' && Number.isInteger(value) ? value : undefined;

/** The graph a config describes, read leniently: items without a task id are dropped. */
export function graphOf(config: JsonObject | null): WorkflowGraph {
  if (!config) return EMPTY_GRAPH;
  const { workflow_type, on_failure, tasks, ...rest } = config;
  const nodes: GraphNode[] = [];
  for (const item of Array.isArray(tasks) ? tasks : []) {
    if (!item || typeof item !== 'object' || Array.isArray(item)) continue;
    const taskId = asInt(item.task_id);
    if (taskId === undefined || nodes.some((n) => n.task_id === taskId)) continue;
    const deps = Array.isArray(item.dependencies) ? item.dependencies : [];
    nodes.push({
      task_id: taskId,
      name: typeof item.name === 'string' ? item.name : '',
      dependencies: deps.map(asInt).filter((d): d is number => d !== undefined),
    });
  }
  return {
    workflow_type: workflow_type === 'serial' ? 'serial' : 'parallel',
    on_failure: on_failure === 'continue' ? 'continue' : 'stop',
    nodes,
    rest,
  };
}

/** The config of a graph, keys in the guide's order. */
export function configOf(graph: WorkflowGraph): JsonObject {
  return {
    workflow_type: graph.workflow_type,
    tasks: graph.nodes.map((n) => ({ task_id: n.task_id, name: n.name, dependencies: [...n.dependencies] })),
    on_failure: graph.on_failure,
    ...graph.rest,
  };
}

export function configText(graph: WorkflowGraph): string {
  return JSON.stringify(configOf(graph), null, 2);
}

export function addNode(graph: WorkflowGraph, taskId: number, name: string): WorkflowGraph {
  if (graph.nodes.some((n) => n.task_id === taskId)) return graph;
  return { ...graph, nodes: [...graph.nodes, { task_id: taskId, name, dependencies: [] }] };
}

/** Removes the nodes and every dependency on them. */
export function removeNodes(graph: WorkflowGraph, taskIds: readonly number[]): WorkflowGraph {
  const gone = new Set(taskIds);
  return {
    ...graph,
    nodes: graph.nodes
      .filter((n) => !gone.has(n.task_id))
      .map((n) => ({ ...n, dependencies: n.dependencies.filter((d) => !gone.has(d)) })),
  };
}

/** `to` runs after `from`. */
export function addDependency(graph: WorkflowGraph, from: number, to: number): WorkflowGraph {
  return {
    ...graph,
    nodes: graph.nodes.map((n) =>
      n.task_id === to && !n.dependencies.includes(from)
        ? { ...n, dependencies: [...n.dependencies, from] }
        : n,
    ),
  };
}

export function removeDependency(graph: WorkflowGraph, from: number, to: number): WorkflowGraph {
  return {
    ...graph,
    nodes: graph.nodes.map((n) =>
      n.task_id === to ? { ...n, dependencies: n.dependencies.filter((d) => d !== from) } : n,
    ),
  };
}

export function renameNode(graph: WorkflowGraph, taskId: number, name: string): WorkflowGraph {
  return { ...graph, nodes: graph.nodes.map((n) => (n.task_id === taskId ? { ...n, name } : n)) };
}

/**
 * The guide's three modes over the current nodes, in their order: serial (each after the one
 * before), parallel (no dependencies), mixed (all but the last in parallel, the last after all).
 */
export function applyPreset(graph: WorkflowGraph, preset: Preset): WorkflowGraph {
  const ids = graph.nodes.map((n) => n.task_id);
  const last = ids.length - 1;
  const dependenciesOf = (index: number): number[] => {
    if (preset === 'serial') return index > 0 ? [ids[index - 1]!] : [];
    if (preset === 'mixed' && index === last && last > 0) return ids.slice(0, last);
    return [];
  };
  return {
    ...graph,
    workflow_type: preset === 'serial' ? 'serial' : 'parallel',
    nodes: graph.nodes.map((n, i) => ({ ...n, dependencies: dependenciesOf(i) })),
  };
}

/** Every dependency as an edge `from → to`, only between nodes of the graph. */
export function edgesOf(nodes: readonly { task_id: number; dependencies: readonly number[] }[]) {
  const ids = new Set(nodes.map((n) => n.task_id));
  return nodes.flatMap((n) =>
    n.dependencies.filter((d) => ids.has(d)).map((d) => ({ from: d, to: n.task_id })),
  );
}

export const NODE_SIZE = { width: 190, height: 64 };

/** Top-to-bottom layered layout (dagre): the top-left corner of every node. */
export function layoutGraph(
  nodes: readonly { task_id: number; dependencies: readonly number[] }[],
): Map<number, { x: number; y: number }> {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 36, ranksep: 60, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(String(n.task_id), { ...NODE_SIZE });
  for (const { from, to } of edgesOf(nodes)) {
    if (from !== to) g.setEdge(String(from), String(to));
  }
  dagre.layout(g);
  const positions = new Map<number, { x: number; y: number }>();
  for (const n of nodes) {
    const placed = g.node(String(n.task_id));
    positions.set(n.task_id, { x: placed.x - NODE_SIZE.width / 2, y: placed.y - NODE_SIZE.height / 2 });
  }
  return positions;
}
