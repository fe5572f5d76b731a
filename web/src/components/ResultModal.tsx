import { Modal, Tabs, Typography } from 'antd';

import type { Execution } from '../api/types';
import { useI18n } from '../i18n';
import { LogViewer } from './LogViewer';
import { ResultView } from './ResultView';

/** One execution: its log (followed live while it runs) and its result, readable. */
export function ResultModal({ execution, onClose }: { execution: Execution; onClose: () => void }) {
  const { t } = useI18n();
  return (
    <Modal open title={t('resultTitle', { id: execution.id })} width={1040} footer={null} onCancel={onClose}>
      <div data-testid="result-modal">
        {execution.error_message && (
          <Typography.Paragraph type="danger" data-testid="result-error">
            {t('execError')}: {execution.error_message}
          </Typography.Paragraph>
        )}
        <Tabs
          defaultActiveKey="log"
          items={[
            { key: 'log', label: t('logTab'), children: <LogViewer executionId={execution.id} /> },
            {
              key: 'result',
              label: <span data-testid="result-tab">{t('resultTab')}</span>,
              children: <ResultView result={execution.result ?? {}} />,
            },
          ]}
        />
      </div>
    </Modal>
  );
}
