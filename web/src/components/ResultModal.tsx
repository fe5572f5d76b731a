import { Modal, Typography } from 'antd';

import type { Execution } from '../api/types';
import { useI18n } from '../i18n';
import { prettyJson } from '../lib/json';

/** The full result JSON of one execution (and its error, if any). */
export function ResultModal({ execution, onClose }: { execution: Execution; onClose: () => void }) {
  const { t } = useI18n();
  return (
    <Modal open title={t('resultTitle', { id: execution.id })} width={760} footer={null} onCancel={onClose}>
      <div data-testid="result-modal">
        {execution.error_message && (
          <Typography.Paragraph type="danger" data-testid="result-error">
            {t('execError')}: {execution.error_message}
          </Typography.Paragraph>
        )}
        <pre className="json-view" data-testid="result-json">
          {prettyJson(execution.result ?? {})}
        </pre>
      </div>
    </Modal>
  );
}
