import { describe, expect, it } from 'vitest';

import {
  addDependency,
  addNode,
  applyPreset,
  configOf,
  graphOf,
  layoutGraph,
  removeDependency,
  removeNodes,
} from './workflowGraph';

const mixed = {
  workflow_type: 'parallel',
  tasks: [
    { task_id: 1, name: 'A', dependencies: [] },
    { task_id: 2, name: 'B', dependencies: [] },
    { task_id: 3, name: 'C', dependencies: [1, 2] },
  ],
  on_failure: 'stop',
  max_parallelism: 4,
};

describe('workflow graph', () => {
  it('reads a config and writes it back unchanged, unknown keys kept', () => {
    expect(configOf(graphOf(mixed))).toEqual(mixed);
  });

  it('builds the guide mixed example from an empty config, edge by edge', () => {
    let graph = graphOf({});
    graph = addNode(addNode(addNode(graph, 1, 'A'), 2, 'B'), 3, 'C');
    graph = addDependency(addDependency(graph, 1, 3), 2, 3);
    expect(configOf(graph)).toEqual({ ...mixed, max_parallelism: undefined });
  });

  it('adds a node only once and a dependency only once', () => {
    const graph = addDependency(addDependency(addNode(graphOf(mixed), 1, 'again'), 1, 3), 1, 3);
    expect(graph.nodes).toHaveLength(3);
    expect(graph.nodes[2]!.dependencies).toEqual([1, 2]);
  });

  it('removing a node removes the dependencies on it', () => {
    const graph = removeNodes(graphOf(mixed), [1]);
    expect(graph.nodes.map((n) => [n.task_id, n.dependencies])).toEqual([
      [2, []],
      [3, [2]],
    ]);
    expect(removeDependency(graph, 2, 3).nodes[1]!.dependencies).toEqual([]);
  });

  it('presets rewire the nodes in their order', () => {
    const graph = graphOf(mixed);
    expect(applyPreset(graph, 'serial').nodes.map((n) => n.dependencies)).toEqual([[], [1], [2]]);
    expect(applyPreset(graph, 'serial').workflow_type).toBe('serial');
    expect(applyPreset(graph, 'parallel').nodes.map((n) => n.dependencies)).toEqual([[], [], []]);
    expect(applyPreset(graph, 'mixed').nodes.map((n) => n.dependencies)).toEqual([[], [], [1, 2]]);
  });

  it('lays dependencies out above their dependents', () => {
    const positions = layoutGraph(graphOf(mixed).nodes);
    expect(positions.get(1)!.y).toBe(positions.get(2)!.y);
    expect(positions.get(3)!.y).toBeGreaterThan(positions.get(1)!.y);
  });

  it('survives a cycle in the layout', () => {
    const cyclic = addDependency(graphOf(mixed), 3, 1);
    expect(layoutGraph(cyclic.nodes).size).toBe(3);
  });
});
