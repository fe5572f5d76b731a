import { describe, expect, it } from 'vitest';

import { layersOf, layoutDag } from './dag';

describe('layersOf', () => {
  it('layers the guide mixed example by longest dependency chain', () => {
    const layers = layersOf([
      { id: 1, dependencies: [] },
      { id: 2, dependencies: [] },
      { id: 3, dependencies: [1, 2] },
      { id: 4, dependencies: [3] },
    ]);
    expect([...layers.entries()]).toEqual([
      [1, 0],
      [2, 0],
      [3, 1],
      [4, 2],
    ]);
  });
  it('uses the longest chain, ignores unknown ids and survives cycles', () => {
    const layers = layersOf([
      { id: 1, dependencies: [99] },
      { id: 2, dependencies: [1] },
      { id: 3, dependencies: [1, 2] },
      { id: 4, dependencies: [5] },
      { id: 5, dependencies: [4] },
    ]);
    expect(layers.get(1)).toBe(0);
    expect(layers.get(3)).toBe(2);
    expect(layers.get(4)).toBeGreaterThanOrEqual(0);
  });
});

describe('layoutDag', () => {
  it('places layers top to bottom, keeps nodes apart, and draws one edge per dependency', () => {
    const layout = layoutDag([
      { id: 1, dependencies: [] },
      { id: 2, dependencies: [] },
      { id: 3, dependencies: [1, 2] },
    ]);
    const [a, b, c] = layout.nodes;
    expect(a!.y).toBe(b!.y);
    expect(c!.y).toBeGreaterThan(a!.y);
    expect(a!.x).toBeLessThan(b!.x);
    // The child is centred between its parents.
    expect(c!.x).toBeCloseTo((a!.x + b!.x) / 2);
    expect(layout.edges).toEqual([
      { from: 1, to: 3 },
      { from: 2, to: 3 },
    ]);
    expect(layout.width).toBeGreaterThan(0);
    expect(layout.height).toBeGreaterThan(c!.y);
  });
  it('orders a layer by the position of its dependencies', () => {
    const layout = layoutDag([
      { id: 1, dependencies: [] },
      { id: 2, dependencies: [] },
      { id: 3, dependencies: [2] },
      { id: 4, dependencies: [1] },
    ]);
    const x = new Map(layout.nodes.map((n) => [n.id, n.x]));
    expect(x.get(4)!).toBeLessThan(x.get(3)!);
  });
});
