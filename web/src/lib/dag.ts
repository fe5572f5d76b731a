// Layered layout of a workflow DAG (pure; unit-tested): a node's layer is the length of the longest
// dependency chain above it; layers are rows top to bottom; within a layer nodes are ordered by the
// mean position of their dependencies (one barycenter pass), ties by config order.

export interface DagInput {
  id: number;
  dependencies: number[];
}

export interface DagNodeLayout {
  id: number;
  layer: number;
  x: number;
  y: number;
}

export interface DagEdge {
  from: number;
  to: number;
}

export interface DagLayout {
  nodes: DagNodeLayout[];
  edges: DagEdge[];
  width: number;
  height: number;
}

export const DAG_GEOMETRY = { nodeWidth: 180, nodeHeight: 60, gapX: 28, gapY: 56, padding: 20 };

/** Layer of every node; dependencies on unknown ids are ignored, cycles are broken. */
export function layersOf(nodes: DagInput[]): Map<number, number> {
  const deps = new Map(nodes.map((n) => [n.id, n.dependencies]));
  const layer = new Map<number, number>();
  const visiting = new Set<number>();
  const visit = (id: number): number => {
    const known = layer.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0;
    visiting.add(id);
    let depth = 0;
    for (const dep of deps.get(id) ?? []) {
      if (deps.has(dep) && dep !== id) depth = Math.max(depth, visit(dep) + 1);
    }
    visiting.delete(id);
    layer.set(id, depth);
    return depth;
  };
  nodes.forEach((n) => visit(n.id));
  return layer;
}

export function layoutDag(nodes: DagInput[], geometry = DAG_GEOMETRY): DagLayout {
  const { nodeWidth, nodeHeight, gapX, gapY, padding } = geometry;
  const layers = layersOf(nodes);
  const configIndex = new Map(nodes.map((n, i) => [n.id, i]));
  const rows: DagInput[][] = [];
  for (const node of nodes) {
    const l = layers.get(node.id) ?? 0;
    (rows[l] ??= []).push(node);
  }

  const position = new Map<number, number>();
  rows.forEach((row, l) => {
    if (l > 0) {
      const barycenter = (n: DagInput) => {
        const placed = n.dependencies.map((d) => position.get(d)).filter((p): p is number => p !== undefined);
        return placed.length ? placed.reduce((a, b) => a + b, 0) / placed.length : Infinity;
      };
      row.sort((a, b) => barycenter(a) - barycenter(b) || configIndex.get(a.id)! - configIndex.get(b.id)!);
    }
    const offset = -(row.length - 1) / 2;
    row.forEach((n, i) => position.set(n.id, offset + i));
  });

  const widest = Math.max(1, ...rows.map((r) => r.length));
  const width = padding * 2 + widest * nodeWidth + (widest - 1) * gapX;
  const height = padding * 2 + rows.length * nodeHeight + Math.max(0, rows.length - 1) * gapY;
  const center = width / 2;
  const layout: DagNodeLayout[] = nodes.map((n) => {
    const l = layers.get(n.id) ?? 0;
    return {
      id: n.id,
      layer: l,
      x: center + (position.get(n.id) ?? 0) * (nodeWidth + gapX) - nodeWidth / 2,
      y: padding + l * (nodeHeight + gapY),
    };
  });
  const ids = new Set(nodes.map((n) => n.id));
  const edges = nodes.flatMap((n) =>
    n.dependencies.filter((d) => ids.has(d) && d !== n.id).map((d) => ({ from: d, to: n.id })),
  );
  return { nodes: layout, edges, width, height };
}
