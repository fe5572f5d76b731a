// Token storage. Tokens live in localStorage so a reload stays logged in. The access token is also
// mirrored into the `access_token` cookie because EventSource cannot send an Authorization header;
// the gateway accepts the JWT from that cookie.

import type { TokenPair } from './types';

const ACCESS_KEY = 'zq.access_token';
const REFRESH_KEY = 'zq.refresh_token';
const COOKIE = 'access_token';

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
  document.cookie = `${COOKIE}=${encodeURIComponent(tokens.access_token)}; path=/; SameSite=Strict`;
}

export function clearTokens(): void {
  localStorage.removeItem(ACCESS_KEY);
  localStorage.removeItem(REFRESH_KEY);
  document.cookie = `${COOKIE}=; path=/; SameSite=Strict; Max-Age=0`;
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
