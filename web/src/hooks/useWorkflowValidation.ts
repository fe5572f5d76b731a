import { useCallback } from 'react';

import { api } from '../api/client';
import type { JsonObject, WorkflowValidation } from '../api/types';
import { useDebouncedValue } from './useDebouncedValue';
import { useRemote } from './useRemote';

/**
 * Server-side check of a workflow config as it is typed (POST /tasks/{id}/workflow/validate;
 * id 0 for a new workflow): missing tasks, cycles, disabled tasks, with the guide's messages.
 */
export function useWorkflowValidation(
  taskId: number | undefined,
  config: JsonObject | null,
  enabled: boolean,
): WorkflowValidation | undefined {
  const text = enabled && config ? JSON.stringify(config) : '';
  const debounced = useDebouncedValue(text, 500);
  const fetcher = useCallback(
    () => api.validateWorkflow(taskId ?? 0, JSON.parse(debounced) as JsonObject),
    [taskId, debounced],
  );
  const { data, loading } = useRemote(debounced ? fetcher : null);
  return text && text === debounced && !loading ? data : undefined;
}
