import { useEffect, useRef } from 'react';

/** Calls `callback` every `intervalMs` while enabled; skips ticks while the tab is hidden. */
export function usePolling(callback: () => void, intervalMs: number, enabled: boolean): void {
  const latest = useRef(callback);
  useEffect(() => {
    latest.current = callback;
  });
  useEffect(() => {
    if (!enabled) return undefined;
    const timer = setInterval(() => {
      if (!document.hidden) latest.current();
    }, intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, enabled]);
}
