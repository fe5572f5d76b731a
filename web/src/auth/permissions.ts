import type { Role } from '../api/types';

/** What a role may do: admin ⊃ operator ⊃ viewer. Viewers get no mutation buttons at all. */
export interface Permissions {
  /** Create, edit, copy, delete tasks. */
  manage: boolean;
  /** Enable, disable, pause, resume, trigger tasks; terminate executions. */
  operate: boolean;
}

export function permissionsFor(role: Role | undefined): Permissions {
  return {
    manage: role === 'admin',
    operate: role === 'admin' || role === 'operator',
  };
}
