// The one data-fetching primitive: runs a fetcher whenever it changes (callers memoize it with
// useCallback), keeps the previous data while reloading, ignores out-of-date responses, and
// reloads in the background (no loading flag) for auto-refresh.

import { useCallback, useEffect, useRef, useState } from 'react';

export interface Remote<T> {
  data: T | undefined;
  /** True only for foreground loads (first load, query change, explicit reload). */
  loading: boolean;
  error: unknown;
  reload: (background?: boolean) => Promise<void>;
}

interface State<T> {
  data: T | undefined;
  loading: boolean;
  error: unknown;
}

/** `fetcher` null = do not fetch (the last data is kept). */
export function useRemote<T>(fetcher: (() => Promise<T>) | null): Remote<T> {
  const [state, setState] = useState<State<T>>({
    data: undefined,
    loading: fetcher !== null,
    error: undefined,
  });
  const sequence = useRef(0);

  const reload = useCallback(
    async (background = false) => {
      if (!fetcher) return;
      const id = ++sequence.current;
      if (!background) setState((s) => ({ ...s, loading: true }));
      try {
        const data = await fetcher();
        if (id === sequence.current) setState({ data, loading: false, error: undefined });
      } catch (error) {
        if (id === sequence.current) setState((s) => ({ ...s, loading: false, error }));
      }
    },
    [fetcher],
  );

  useEffect(() => {
    void reload();
  }, [reload]);

  return { ...state, reload };
}
