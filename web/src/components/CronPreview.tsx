// Under the cron field: the next five run times (with the trading calendar applied, where its data
// ends and the mark for times beyond it), or the server's error (with its position).

import { LoadingOutlined } from '@ant-design/icons';
import { Typography } from 'antd';

import { errorText } from '../api/client';
import { useCronPreview } from '../hooks/useCronPreview';
import { useI18n } from '../i18n';
import { formatTime } from '../lib/format';

interface Props {
  expression: string;
  timezone: string;
  calendar?: string;
  calendarShift?: number;
}

export function CronPreview({ expression, timezone, calendar = '', calendarShift = 0 }: Props) {
  const { t } = useI18n();
  const preview = useCronPreview(expression, timezone, calendar, calendarShift);
  if (preview.checking) {
    return (
      <Typography.Text type="secondary" data-testid="cron-checking">
        <LoadingOutlined /> {t('cronChecking')}
      </Typography.Text>
    );
  }
  if (preview.error !== undefined) {
    return (
      <Typography.Text type="danger" data-testid="cron-error">
        {errorText(preview.error, t('fieldCronRequired'))}
      </Typography.Text>
    );
  }
  if (!preview.times) return null;
  return (
    <div data-testid="cron-preview" className="cron-preview">
      <Typography.Text type="secondary">{t('cronNextRuns')}</Typography.Text>
      <ol>
        {preview.times.map((time) => (
          <li key={time}>{formatTime(time)}</li>
        ))}
      </ol>
      {calendar && preview.calendarDataEnd && (
        <Typography.Text type="secondary" data-testid="cron-calendar-end">
          {t('calendarDataEnd')} {preview.calendarDataEnd}
        </Typography.Text>
      )}
      {preview.calendarNote && (
        <div>
          <Typography.Text type="warning" data-testid="cron-calendar-note">
            {preview.calendarNote}
          </Typography.Text>
        </div>
      )}
    </div>
  );
}
