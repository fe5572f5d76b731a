import { ClockCircleOutlined, LogoutOutlined, UserOutlined } from '@ant-design/icons';
import { Button, Layout, Space, Tag, Typography } from 'antd';

import { useAuth, useCurrentUser } from '../auth/AuthProvider';
import { useI18n } from '../i18n';
import { LanguageSwitch } from './LanguageSwitch';

const ROLE_COLORS = { admin: 'red', operator: 'blue', viewer: 'default' } as const;

export function AppHeader() {
  const { t } = useI18n();
  const { logout } = useAuth();
  const { user } = useCurrentUser();
  return (
    <Layout.Header className="app-header">
      <Space>
        <ClockCircleOutlined className="app-logo" />
        <Typography.Title level={4} className="app-title">
          {t('appTitle')}
        </Typography.Title>
      </Space>
      <Space size="middle">
        <LanguageSwitch />
        <Space size={4} data-testid="current-user" data-role={user.role}>
          <UserOutlined />
          <span>{user.username}</span>
          <Tag color={ROLE_COLORS[user.role] ?? 'default'}>{t(`role_${user.role}`)}</Tag>
        </Space>
        <Button icon={<LogoutOutlined />} data-testid="logout" onClick={logout}>
          {t('logout')}
        </Button>
      </Space>
    </Layout.Header>
  );
}
