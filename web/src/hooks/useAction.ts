import { App } from 'antd';
import { useCallback } from 'react';

import { errorText } from '../api/client';

/**
 * Runs a mutation and reports it: the success toast, or the server's `detail` (else `failure`) as an
 * error toast. Resolves to the result, or undefined when it failed.
 */
export function useAction() {
  const { message } = App.useApp();
  return useCallback(
    async <T>(
      call: () => Promise<T>,
      texts: { success?: string; failure: string },
    ): Promise<T | undefined> => {
      try {
        const result = await call();
        if (texts.success) void message.success(texts.success);
        return result;
      } catch (error) {
        void message.error(errorText(error, texts.failure));
        return undefined;
      }
    },
    [message],
  );
}
