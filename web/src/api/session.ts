// Token storage. Tokens live in localStorage so a reload stays logged in; every call sends the access
// token in the Authorization header. EventSource cannot send a header: for the watch streams the
// server sets an HttpOnly `access_token` cookie with the login and refresh answers (scripts never see
// it) and clears it on logout. That cookie authorises reading only: changes need the header.

import type { TokenPair } from './types';

const ACCESS_KEY = 'zq.access_token';
const REFRESH_KEY = 'zq.refresh_token';

type Listener = () => void;
const endListeners = new Set<Listener>();

export function accessToken(): string | null {
  return localStorage.getItem(ACCESS_KEY);
}

export function refreshToken(): string | null {
  return localStorage.getItem(REFRESH_KEY);
}

export function storeTokens(tokens: TokenPair): void {
  localStorage.setItem(ACCESS_KEY, tokens.access_token);
  localStorage.setItem(REFRESH_KEY, tokens.refresh_token);
}

export function clearTokens(): void {
  localStorage.removeItem(ACCESS_KEY);
  localStorage.removeItem(REFRESH_KEY);
}

/** Called by the API client when the session cannot be renewed (refresh failed). */
export function endSession(): void {
  clearTokens();
  endListeners.forEach((listener) => listener());
}

/** Subscribe to the end of the session; returns the unsubscribe function. */
export function onSessionEnd(listener: Listener): () => void {
  endListeners.add(listener);
  return () => endListeners.delete(listener);
}
