/**
 * Least-privileged Microsoft Graph application permissions for each operation the Graph adapter
 * performs. infra/ grants exactly these (tests compare), and 403 messages name them.
 */
export const GraphPermissions = {
  readUser: 'User.Read.All',
  revokeSessions: 'User.RevokeSessions.All',
  disableAccount: 'User.EnableDisableAccount.All',
  resetPassword: 'User-PasswordProfile.ReadWrite.All',
} as const;

export type GraphOperation = keyof typeof GraphPermissions;

/** The Entra role a password reset additionally needs (app-only), and why admins are out of reach. */
export const PASSWORD_RESET_ROLE = 'User Administrator';
export const PASSWORD_RESET_ROLE_NOTE =
  'Password resets need the Graph permission User-PasswordProfile.ReadWrite.All and the Entra role User Administrator on the managed identity; users who hold an admin role can only be reset by a higher role (Privileged Authentication Administrator), which this app deliberately does not get.';

/** Graph application permissions the app needs; the password permission only when resets are enabled. */
export function requiredGraphPermissions(passwordResetsEnabled: boolean): string[] {
  const always = [
    GraphPermissions.readUser,
    GraphPermissions.revokeSessions,
    GraphPermissions.disableAccount,
  ];
  return passwordResetsEnabled ? [...always, GraphPermissions.resetPassword] : always;
}
