import { App as AntdApp, ConfigProvider, Layout, Spin } from 'antd';

import { AuthProvider, useAuth } from './auth/AuthProvider';
import { AppHeader } from './components/AppHeader';
import { LoginPage } from './components/LoginPage';
import { TaskListPage } from './components/TaskListPage';
import { useReducedMotion } from './hooks/useReducedMotion';
import { useI18n } from './i18n';

function Gate() {
  const { state } = useAuth();
  if (state.status === 'checking') return <Spin size="large" className="page-spin" />;
  if (state.status === 'anonymous') return <LoginPage expired={state.expired} />;
  return (
    <Layout className="app-layout">
      <AppHeader />
      <Layout.Content className="app-content">
        <TaskListPage />
      </Layout.Content>
    </Layout>
  );
}

export function App() {
  const { antdLocale } = useI18n();
  const reducedMotion = useReducedMotion();
  return (
    <ConfigProvider
      locale={antdLocale}
      theme={{ token: { colorPrimary: '#1677ff', borderRadius: 6, motion: !reducedMotion } }}
    >
      <AntdApp>
        <AuthProvider>
          <Gate />
        </AuthProvider>
      </AntdApp>
    </ConfigProvider>
  );
}
