import { LockOutlined, UserOutlined } from '@ant-design/icons';
import { Alert, App, Button, Card, Form, Input, Typography } from 'antd';
import { useState } from 'react';

import { errorText } from '../api/client';
import { useAuth } from '../auth/AuthProvider';
import { useI18n } from '../i18n';
import { LanguageSwitch } from './LanguageSwitch';

interface LoginValues {
  username: string;
  password: string;
}

export function LoginPage({ expired }: { expired: boolean }) {
  const { t } = useI18n();
  const { login } = useAuth();
  const { message } = App.useApp();
  const [submitting, setSubmitting] = useState(false);
  const [error, setError] = useState<string>();

  const submit = async ({ username, password }: LoginValues) => {
    setSubmitting(true);
    setError(undefined);
    try {
      await login(username.trim(), password);
    } catch (e) {
      const text = errorText(e, t('loginFailed'));
      setError(text);
      void message.error(text);
      setSubmitting(false);
    }
  };

  return (
    <div className="login-page">
      <Card className="login-card" title={t('loginTitle')} extra={<LanguageSwitch />}>
        {expired && !error && (
          <Alert
            type="info"
            showIcon
            message={t('sessionExpired')}
            className="login-alert"
            data-testid="session-expired"
          />
        )}
        {error && (
          <Alert type="error" showIcon message={error} className="login-alert" data-testid="login-error" />
        )}
        <Form<LoginValues>
          layout="vertical"
          onFinish={(values) => void submit(values)}
          data-testid="login-form"
        >
          <Form.Item
            name="username"
            label={t('username')}
            rules={[{ required: true, message: t('loginRequiredUsername') }]}
          >
            <Input prefix={<UserOutlined />} autoComplete="username" autoFocus data-testid="login-username" />
          </Form.Item>
          <Form.Item
            name="password"
            label={t('password')}
            rules={[{ required: true, message: t('loginRequiredPassword') }]}
          >
            <Input.Password
              prefix={<LockOutlined />}
              autoComplete="current-password"
              data-testid="login-password"
            />
          </Form.Item>
          <Button type="primary" htmlType="submit" block loading={submitting} data-testid="login-submit">
            {t('login')}
          </Button>
        </Form>
        <Typography.Paragraph type="secondary" className="login-hint">
          ZQuant Scheduler
        </Typography.Paragraph>
      </Card>
    </div>
  );
}
