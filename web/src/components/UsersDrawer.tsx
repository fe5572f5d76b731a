// User management (admin): the accounts with their role and state, create, change the role,
// disable / enable, reset the password, unlock an account locked out after failed logins. Backed by /api/v1/auth/users. Each change is saved at once.

import { PlusOutlined, ReloadOutlined, UnlockOutlined } from '@ant-design/icons';
import {
  App,
  Button,
  Drawer,
  Form,
  Input,
  Modal,
  Select,
  Space,
  Switch,
  Table,
  Tooltip,
  Typography,
} from 'antd';
import type { ColumnsType } from 'antd/es/table';
import { useCallback, useState } from 'react';

import { api, errorText } from '../api/client';
import type { Role, User, UserCreate, UserUpdate } from '../api/types';
import { useCurrentUser } from '../auth/AuthProvider';
import { useAction } from '../hooks/useAction';
import { useRemote } from '../hooks/useRemote';
import { useI18n } from '../i18n';
import { formatTime } from '../lib/format';
import { testId } from '../lib/testId';

const ROLES: Role[] = ['admin', 'operator', 'viewer'];
const MIN_PASSWORD = 8;

export function UsersDrawer({ onClose }: { onClose: () => void }) {
  const { t } = useI18n();
  const act = useAction();
  const { user: me } = useCurrentUser();
  const users = useRemote(useCallback(() => api.listUsers(), []));
  const [creating, setCreating] = useState(false);
  const [resetting, setResetting] = useState<string>();

  const update = async (username: string, changes: UserUpdate) => {
    const saved = await act(() => api.updateUser(username, changes), {
      success: t('userUpdated'),
      failure: t('userUpdateFailed'),
    });
    await users.reload(true);
    return saved;
  };

  const unlock = async (username: string) => {
    await act(() => api.unlockUser(username), { success: t('userUnlocked'), failure: t('userUnlockFailed') });
    await users.reload(true);
  };

  const roleOptions = ROLES.map((role) => ({ value: role, label: t(`role_${role}`) }));
  const columns: ColumnsType<User> = [
    { key: 'username', title: t('userName'), dataIndex: 'username' },
    {
      key: 'role',
      title: t('userRole'),
      width: 160,
      render: (_, user) => (
        <Select<Role>
          size="small"
          value={user.role}
          style={{ width: 130 }}
          options={roleOptions}
          disabled={user.username === me.username}
          data-testid={`user-role-${user.username}`}
          onChange={(role) => void update(user.username, { role })}
        />
      ),
    },
    {
      key: 'enabled',
      title: t('userEnabled'),
      width: 110,
      render: (_, user) => (
        <Switch
          size="small"
          checked={!user.disabled}
          disabled={user.username === me.username}
          data-testid={`user-enabled-${user.username}`}
          onChange={(enabled) => void update(user.username, { disabled: !enabled })}
        />
      ),
    },
    {
      key: 'created',
      title: t('colCreatedAt'),
      width: 180,
      render: (_, user) => formatTime(user.created_at),
    },
    {
      key: 'actions',
      title: t('colActions'),
      width: 200,
      render: (_, user) => (
        <Space size={0}>
          <Button
            type="link"
            size="small"
            data-testid={`user-reset-${user.username}`}
            onClick={() => setResetting(user.username)}
          >
            {t('userResetPassword')}
          </Button>
          {user.locked_until && (
            <Tooltip title={t('userLockedTip', { until: formatTime(user.locked_until) })}>
              <Button
                type="link"
                size="small"
                icon={<UnlockOutlined />}
                data-testid={`user-unlock-${user.username}`}
                onClick={() => void unlock(user.username)}
              >
                {t('userUnlock')}
              </Button>
            </Tooltip>
          )}
        </Space>
      ),
    },
  ];

  return (
    <Drawer
      open
      width="min(900px, 96vw)"
      title={t('usersTitle')}
      onClose={onClose}
      data-testid="users-drawer"
    >
      <Space style={{ marginBottom: 12 }}>
        <Button
          type="primary"
          icon={<PlusOutlined />}
          {...testId('user-create')}
          onClick={() => setCreating(true)}
        >
          {t('userCreate')}
        </Button>
        <Button icon={<ReloadOutlined />} onClick={() => void users.reload()}>
          {t('refresh')}
        </Button>
      </Space>
      {users.error !== undefined && (
        <Typography.Text type="danger">{errorText(users.error, t('usersLoadFailed'))}</Typography.Text>
      )}
      <Table<User>
        rowKey="username"
        size="small"
        columns={columns}
        dataSource={users.data?.users ?? []}
        loading={users.loading}
        pagination={false}
        onRow={(user) =>
          ({ ...testId(`user-row-${user.username}`), 'data-disabled': String(user.disabled) }) as object
        }
      />
      {creating && (
        <CreateUserModal
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            void users.reload(true);
          }}
        />
      )}
      {resetting && (
        <ResetPasswordModal
          username={resetting}
          onClose={() => setResetting(undefined)}
          onSave={async (password) => {
            if (await update(resetting, { password })) setResetting(undefined);
          }}
        />
      )}
    </Drawer>
  );
}

function CreateUserModal({ onClose, onCreated }: { onClose: () => void; onCreated: () => void }) {
  const { t } = useI18n();
  const { message } = App.useApp();
  const [form] = Form.useForm<UserCreate>();
  const [saving, setSaving] = useState(false);
  const submit = async () => {
    let values: UserCreate;
    try {
      values = await form.validateFields();
    } catch {
      return;
    }
    setSaving(true);
    try {
      await api.createUser({ ...values, username: values.username.trim() });
      void message.success(t('userCreated'));
      onCreated();
    } catch (error) {
      void message.error(errorText(error, t('userCreateFailed')));
    } finally {
      setSaving(false);
    }
  };
  return (
    <Modal
      open
      title={t('userCreate')}
      okText={t('create')}
      cancelText={t('cancel')}
      confirmLoading={saving}
      okButtonProps={testId('user-form-submit')}
      onOk={() => void submit()}
      onCancel={onClose}
    >
      <Form<UserCreate>
        form={form}
        layout="vertical"
        initialValues={{ username: '', password: '', role: 'operator' }}
      >
        <Form.Item
          name="username"
          label={t('userName')}
          rules={[{ required: true, whitespace: true, message: t('loginRequiredUsername') }]}
        >
          <Input data-testid="user-form-username" autoComplete="off" />
        </Form.Item>
        <Form.Item
          name="password"
          label={t('password')}
          rules={[
            { required: true, min: MIN_PASSWORD, message: t('userPasswordRule', { min: MIN_PASSWORD }) },
          ]}
        >
          <Input.Password data-testid="user-form-password" autoComplete="new-password" />
        </Form.Item>
        <Form.Item name="role" label={t('userRole')}>
          <Select<Role>
            data-testid="user-form-role"
            options={ROLES.map((role) => ({ value: role, label: t(`role_${role}`) }))}
          />
        </Form.Item>
      </Form>
    </Modal>
  );
}

function ResetPasswordModal({
  username,
  onClose,
  onSave,
}: {
  username: string;
  onClose: () => void;
  onSave: (password: string) => Promise<void>;
}) {
  const { t } = useI18n();
  const [form] = Form.useForm<{ password: string }>();
  const [saving, setSaving] = useState(false);
  return (
    <Modal
      open
      title={t('userResetTitle', { name: username })}
      okText={t('ok')}
      cancelText={t('cancel')}
      confirmLoading={saving}
      okButtonProps={testId('reset-password-submit')}
      onCancel={onClose}
      onOk={async () => {
        let values: { password: string };
        try {
          values = await form.validateFields();
        } catch {
          return;
        }
        setSaving(true);
        await onSave(values.password);
        setSaving(false);
      }}
    >
      <Form form={form} layout="vertical">
        <Form.Item
          name="password"
          label={t('userNewPassword')}
          rules={[
            { required: true, min: MIN_PASSWORD, message: t('userPasswordRule', { min: MIN_PASSWORD }) },
          ]}
        >
          <Input.Password data-testid="reset-password-input" autoComplete="new-password" />
        </Form.Item>
      </Form>
    </Modal>
  );
}
