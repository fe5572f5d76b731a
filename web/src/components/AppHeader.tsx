import {
  AlertOutlined,
  AuditOutlined,
  CalendarOutlined,
  ClockCircleOutlined,
  LogoutOutlined,
  TeamOutlined,
  UserOutlined,
} from '@ant-design/icons';
import { Button, Layout, Space, Tag, Typography } from 'antd';
import { useState } from 'react';

import { useAuth, useCurrentUser } from '../auth/AuthProvider';
import { useI18n } from '../i18n';
import { AlertsDrawer } from './AlertsDrawer';
import { AuditDrawer } from './AuditDrawer';
import { CalendarsDrawer } from './CalendarsDrawer';
import { LanguageSwitch } from './LanguageSwitch';
import { SystemStatus } from './SystemStatus';
import { UsersDrawer } from './UsersDrawer';

const ROLE_COLORS = { admin: 'red', operator: 'blue', viewer: 'default' } as const;

export function AppHeader() {
  const { t } = useI18n();
  const { logout } = useAuth();
  const { user } = useCurrentUser();
  const [usersOpen, setUsersOpen] = useState(false);
  const [calendarsOpen, setCalendarsOpen] = useState(false);
  const [auditOpen, setAuditOpen] = useState(false);
  const [alertsOpen, setAlertsOpen] = useState(false);
  return (
    <Layout.Header className="app-header">
      <Space className="app-brand">
        <ClockCircleOutlined className="app-logo" />
        <Typography.Title level={4} className="app-title">
          {t('appTitle')}
        </Typography.Title>
      </Space>
      <Space size={4} className="app-header-tools" data-testid="header-tools">
        <SystemStatus />
        <LanguageSwitch />
        <Button
          type="text"
          className="header-link"
          icon={<CalendarOutlined />}
          data-testid="calendars-open"
          onClick={() => setCalendarsOpen(true)}
        >
          {t('calendars')}
        </Button>
        {user.role === 'admin' && (
          <>
            <Button
              type="text"
              className="header-link"
              icon={<AlertOutlined />}
              data-testid="alerts-open"
              onClick={() => setAlertsOpen(true)}
            >
              {t('alertsTitle')}
            </Button>
            <Button
              type="text"
              className="header-link"
              icon={<TeamOutlined />}
              data-testid="users-open"
              onClick={() => setUsersOpen(true)}
            >
              {t('usersTitle')}
            </Button>
            <Button
              type="text"
              className="header-link"
              icon={<AuditOutlined />}
              data-testid="audit-open"
              onClick={() => setAuditOpen(true)}
            >
              {t('auditTitle')}
            </Button>
          </>
        )}
        <Space size={4} data-testid="current-user" data-role={user.role}>
          <UserOutlined />
          <span>{user.username}</span>
          <Tag color={ROLE_COLORS[user.role] ?? 'default'}>{t(`role_${user.role}`)}</Tag>
        </Space>
        <Button
          type="text"
          className="header-link"
          icon={<LogoutOutlined />}
          data-testid="logout"
          onClick={logout}
        >
          {t('logout')}
        </Button>
      </Space>
      {usersOpen && <UsersDrawer onClose={() => setUsersOpen(false)} />}
      {calendarsOpen && (
        <CalendarsDrawer canEdit={user.role === 'admin'} onClose={() => setCalendarsOpen(false)} />
      )}
      {auditOpen && <AuditDrawer onClose={() => setAuditOpen(false)} />}
      {alertsOpen && <AlertsDrawer onClose={() => setAlertsOpen(false)} />}
    </Layout.Header>
  );
}
