// Import and export of tasks and workflows on the task list (docs/contract.md, TransferService).
// Export (any role) pages through GET /tasks:export and downloads one JSON document; import (admin)
// reads a JSON document, previews it with a dry run (created / updated / unchanged per name, nothing
// changed), and applies it in one all-or-nothing call. A refused document shows the server's detail,
// which names each invalid item.

import { DownloadOutlined, UploadOutlined } from '@ant-design/icons';
import { Alert, App, Button, Modal, Space, Table, Typography } from 'antd';
import { useState, type ChangeEvent } from 'react';

import { api, errorText } from '../api/client';
import type { ImportResult, JsonObject, TransferDocument } from '../api/types';
import { useI18n } from '../i18n';

/** The document a file holds, or null when it is no document ({"tasks": [...]} or a bare list). */
export function parseDocument(text: string): TransferDocument | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (Array.isArray(value)) return { version: 1, tasks: value as JsonObject[] };
  if (value && typeof value === 'object' && Array.isArray((value as { tasks?: unknown }).tasks)) {
    return value as TransferDocument;
  }
  return null;
}

function counts({ created, updated, unchanged }: ImportResult) {
  return { created, updated, unchanged };
}

function download(document: TransferDocument) {
  const blob = new Blob([JSON.stringify(document, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const link = window.document.createElement('a');
  link.href = url;
  link.download = `zquant-tasks-${new Date().toISOString().slice(0, 10)}.json`;
  link.click();
  URL.revokeObjectURL(url);
}

export function TransferButtons({ canImport, onImported }: { canImport: boolean; onImported: () => void }) {
  const { t } = useI18n();
  const { message } = App.useApp();
  const [exporting, setExporting] = useState(false);
  const [open, setOpen] = useState(false);
  const [document, setDocument] = useState<TransferDocument | null>(null);
  const [preview, setPreview] = useState<ImportResult | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const exportAll = async () => {
    setExporting(true);
    try {
      const tasks: JsonObject[] = [];
      let afterId = 0;
      do {
        const page = await api.exportPage(afterId);
        tasks.push(...page.tasks);
        afterId = page.next_after_id;
      } while (afterId);
      download({ version: 1, tasks });
      void message.success(t('exportDone', { count: tasks.length }));
    } catch (error) {
      void message.error(errorText(error, t('exportFailed')));
    } finally {
      setExporting(false);
    }
  };

  const run = async (dryRun: boolean) => {
    if (!document) return;
    setBusy(true);
    setProblem(null);
    try {
      const result = await api.importTasks(document, dryRun);
      if (dryRun) {
        setPreview(result);
      } else {
        void message.success(t('importDone', counts(result)));
        close();
        onImported();
      }
    } catch (error) {
      setPreview(null);
      setProblem(errorText(error, t('importFailed')));
    } finally {
      setBusy(false);
    }
  };

  const pick = async (event: ChangeEvent<HTMLInputElement>) => {
    const file = event.target.files?.[0];
    setPreview(null);
    setProblem(null);
    if (!file) return;
    const parsed = parseDocument(await file.text());
    setDocument(parsed);
    if (!parsed) setProblem(t('importNotDocument'));
  };

  const close = () => {
    setOpen(false);
    setDocument(null);
    setPreview(null);
    setProblem(null);
  };

  return (
    <>
      <Button
        icon={<DownloadOutlined />}
        loading={exporting}
        data-testid="export-tasks"
        onClick={() => void exportAll()}
      >
        {t('exportTasks')}
      </Button>
      {canImport && (
        <Button icon={<UploadOutlined />} data-testid="import-tasks" onClick={() => setOpen(true)}>
          {t('importTasks')}
        </Button>
      )}
      <Modal
        open={open}
        title={t('importTitle')}
        onCancel={close}
        width={640}
        footer={
          <Space>
            <Button
              data-testid="import-preview"
              disabled={!document}
              loading={busy}
              onClick={() => void run(true)}
            >
              {t('importPreview')}
            </Button>
            <Button
              type="primary"
              data-testid="import-apply"
              disabled={!preview}
              loading={busy}
              onClick={() => void run(false)}
            >
              {t('importApply')}
            </Button>
          </Space>
        }
      >
        <Space direction="vertical" style={{ width: '100%' }}>
          <Typography.Text type="secondary">{t('importHint')}</Typography.Text>
          <label>
            {t('importPick')}:{' '}
            <input
              type="file"
              accept=".json,application/json"
              data-testid="import-file"
              onChange={(e) => void pick(e)}
            />
          </label>
          {problem && <Alert type="error" showIcon message={problem} data-testid="import-problem" />}
          {preview && (
            <>
              <Alert
                type="info"
                showIcon
                message={t('importSummary', counts(preview))}
                data-testid="import-summary"
              />
              <Table
                size="small"
                rowKey="name"
                pagination={{ pageSize: 10 }}
                dataSource={preview.tasks}
                columns={[
                  { title: t('colName'), dataIndex: 'name' },
                  {
                    title: t('importAction'),
                    dataIndex: 'action',
                    render: (action: string) => t(`importAction_${action}` as 'importAction_created'),
                  },
                ]}
              />
            </>
          )}
        </Space>
      </Modal>
    </>
  );
}
