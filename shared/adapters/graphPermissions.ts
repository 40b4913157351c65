import { ActionTable, type ActionName } from '../core/actions';

/** What the Graph adapter does: read a user, read the sign-in log, or one of the actions. */
export type GraphOperation = 'readUser' | 'readSignIns' | ActionName;

/**
 * Least-privileged Microsoft Graph application permissions for each operation, from the action
 * table. infra/ grants exactly these (through infra/contract.json), and 403 messages name them.
 */
export const GraphPermissions = {
  readUser: 'User.Read.All',
  /** The sign-in watch only (SIGNIN_WATCH_ENABLED): read-only, every user's sign-in log. */
  readSignIns: 'AuditLog.Read.All',
  ...(Object.fromEntries(ActionTable.map((a) => [a.name, a.graphPermission])) as Record<
    ActionName,
    string
  >),
} as const satisfies Record<GraphOperation, string>;

/** The Entra role a password reset additionally needs (app-only). */
export const PASSWORD_RESET_ROLE = ActionTable.find((a) => a.name === 'resetPassword')
  ?.entraRole as string;

/**
 * Graph application permissions the app needs; opt-in actions' only when they are enabled, and
 * the sign-in log's only when the sign-in watch is on.
 */
export function requiredGraphPermissions(
  optInActionsEnabled: boolean,
  signInWatch = false,
): string[] {
  const permissions = [
    GraphPermissions.readUser,
    ...(signInWatch ? [GraphPermissions.readSignIns] : []),
    // Actions that also need an Entra role (the password reset) are opt-in at deployment.
    ...ActionTable.filter((a) => optInActionsEnabled || a.entraRole === undefined).map(
      (a) => a.graphPermission,
    ),
  ];
  // Several actions can share a permission (disabling and re-enabling an account).
  return [...new Set(permissions)];
}
