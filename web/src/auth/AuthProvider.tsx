// Session state: checks a stored token on load (GET /auth/me), logs in and out, and drops back to
// the login page when the API client reports that the session could not be renewed.

import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';

import { api } from '../api/client';
import { accessToken, clearTokens, onSessionEnd, storeTokens } from '../api/session';
import type { CurrentUser } from '../api/types';
import { permissionsFor, type Permissions } from './permissions';

type AuthState =
  | { status: 'checking' }
  | { status: 'anonymous'; expired: boolean }
  | { status: 'authenticated'; user: CurrentUser };

interface AuthValue {
  state: AuthState;
  login: (username: string, password: string) => Promise<void>;
  logout: () => void;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<AuthState>(() =>
    accessToken() ? { status: 'checking' } : { status: 'anonymous', expired: false },
  );

  useEffect(() => onSessionEnd(() => setState({ status: 'anonymous', expired: true })), []);

  useEffect(() => {
    if (state.status !== 'checking') return;
    let cancelled = false;
    api
      .me()
      .then((user) => !cancelled && setState({ status: 'authenticated', user }))
      .catch(() => {
        if (cancelled) return;
        clearTokens();
        setState({ status: 'anonymous', expired: false });
      });
    return () => {
      cancelled = true;
    };
  }, [state.status]);

  const login = useCallback(async (username: string, password: string) => {
    storeTokens(await api.login({ username, password }));
    try {
      setState({ status: 'authenticated', user: await api.me() });
    } catch (error) {
      clearTokens();
      throw error;
    }
  }, []);

  const logout = useCallback(() => {
    // The server revokes the session and clears the cookie; locally the session ends either way.
    const ended = accessToken() ? api.logout().catch(() => undefined) : Promise.resolve();
    void ended.finally(() => {
      clearTokens();
      setState({ status: 'anonymous', expired: false });
    });
  }, []);

  const value = useMemo(() => ({ state, login, logout }), [state, login, logout]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}

/** The signed-in user and what they may do (only valid below the login gate). */
export function useCurrentUser(): { user: CurrentUser; can: Permissions } {
  const { state } = useAuth();
  const role = state.status === 'authenticated' ? state.user.role : undefined;
  const can = useMemo(() => permissionsFor(role), [role]);
  if (state.status !== 'authenticated') throw new Error('useCurrentUser without a session');
  return { user: state.user, can };
}
