import { useCallback } from 'react';

import { api } from '../api/client';
import type { SystemStatus } from '../api/types';
import { usePolling } from './usePolling';
import { useRemote, type Remote } from './useRemote';

/** How often the header asks GET /status: a stopped scheduler shows within this (plus a request). */
export const STATUS_POLL_MS = 2000;

/** The system status, reloaded in the background every STATUS_POLL_MS. */
export function useSystemStatus(): Remote<SystemStatus> {
  const remote = useRemote(useCallback(() => api.getStatus(), []));
  const reload = remote.reload;
  usePolling(() => void reload(true), STATUS_POLL_MS, true);
  return remote;
}
