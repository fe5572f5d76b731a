// jsdom lacks matchMedia, which antd's responsive helpers call.
if (typeof window !== 'undefined' && !window.matchMedia) {
  window.matchMedia = (query: string) =>
    ({
      matches: false,
      media: query,
      onchange: null,
      addListener: () => undefined,
      removeListener: () => undefined,
      addEventListener: () => undefined,
      removeEventListener: () => undefined,
      dispatchEvent: () => false,
    }) as MediaQueryList;
}

// jsdom has no layout. The workflow canvas (@xyflow/react) measures its nodes with ResizeObserver,
// offsetWidth/offsetHeight and DOMMatrixReadOnly before it draws edges: give every element a size
// (the recipe of React Flow's testing guide).
if (typeof window !== 'undefined' && !(window as { ResizeObserver?: unknown }).ResizeObserver) {
  class SizedResizeObserver {
    constructor(private readonly callback: ResizeObserverCallback) {}
    observe(target: Element): void {
      this.callback([{ target } as ResizeObserverEntry], this as unknown as ResizeObserver);
    }
    unobserve(): void {}
    disconnect(): void {}
  }
  class Matrix {
    m22: number;
    constructor(transform?: string) {
      const scale = /scale\(([\d.]+)\)/.exec(transform ?? '');
      this.m22 = scale ? Number(scale[1]) : 1;
    }
  }
  Object.assign(window, { ResizeObserver: SizedResizeObserver, DOMMatrixReadOnly: Matrix });
  Object.defineProperties(globalThis.HTMLElement.prototype, {
    offsetHeight: { get: () => 100, configurable: true },
    offsetWidth: { get: () => 100, configurable: true },
  });
  (globalThis.SVGElement.prototype as unknown as { getBBox: () => DOMRect }).getBBox = () =>
    ({ x: 0, y: 0, width: 0, height: 0 }) as DOMRect;
}
