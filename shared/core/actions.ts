import type { EventKind } from './events';
import type { Secret } from './password';
import type { Directory, DirectoryCall } from './ports';

/**
 * Every action the app can take on a user, declared once. The order of the table is the order of
 * execution (disable first so no new sign-in starts, then reset, then revoke, so nothing issued in
 * between survives). The event schema, the plan, the dispatch, the synced-user rule, the Graph
 * permissions (and through infra/contract.json the Bicep), the CSV columns and the labels all
 * derive from it: a new action is one row here, one Directory port method and one adapter method.
 */
export const ActionTable = [
  {
    name: 'disableAccount',
    label: 'disable the account',
    /** The event kinds that ask for it (a departure only when its leaverFlag is set). */
    requestedBy: ['employee.leaving'],
    /** Requested on employee.leaving by this data field (with this default). */
    leaverFlag: { field: 'disableAccount', default: true },
    /** For a user synchronised from on-premises AD, Entra refuses the write: change it there. */
    masteredOnPremises: true,
    /** Done again by a later attempt even if an earlier one succeeded. */
    repeatEachAttempt: false,
    graphPermission: 'User.EnableDisableAccount.All',
    /** An Entra role the identity needs besides the permission; such an action is opt-in at deploy. */
    entraRole: undefined,
    run: (directory: Directory, userId: string): Promise<DirectoryCall> =>
      directory.disableAccount(userId),
  },
  {
    name: 'resetPassword',
    label: 'reset the password',
    requestedBy: ['employee.leaving'],
    leaverFlag: { field: 'resetPassword', default: false },
    masteredOnPremises: true,
    // Never twice: a second reset would lock out a helpdesk that already handed over the first.
    repeatEachAttempt: false,
    graphPermission: 'User-PasswordProfile.ReadWrite.All',
    // App-only password resets need the role too; admins need a higher one, deliberately not granted.
    entraRole: 'User Administrator',
    run: (directory: Directory, userId: string, password: () => Secret): Promise<DirectoryCall> =>
      directory.resetPassword(userId, password()),
  },
  {
    name: 'revokeSignInSessions',
    label: 'revoke the sign-in sessions',
    /** Always part of a departure; an MFA roll-out asks for nothing else. */
    requestedBy: ['employee.leaving', 'mfa.enabled'],
    leaverFlag: undefined,
    masteredOnPremises: false,
    // The proof (signInSessionsValidFromDateTime moving) is read right after this run's revoke.
    repeatEachAttempt: true,
    graphPermission: 'User.RevokeSessions.All',
    entraRole: undefined,
    run: (directory: Directory, userId: string): Promise<DirectoryCall> =>
      directory.revokeSignInSessions(userId),
  },
  {
    name: 'enableAccount',
    label: 're-enable the account',
    // Only a reinstatement asks for it, and only for an account this app disabled (reinstate.ts).
    requestedBy: ['employee.reinstated'],
    leaverFlag: undefined,
    masteredOnPremises: true,
    repeatEachAttempt: false,
    // The permission that disables also enables: reinstatement needs no new grant.
    graphPermission: 'User.EnableDisableAccount.All',
    entraRole: undefined,
    run: (directory: Directory, userId: string): Promise<DirectoryCall> =>
      directory.enableAccount(userId),
  },
] as const satisfies ReadonlyArray<{ requestedBy: readonly EventKind[]; [field: string]: unknown }>;

export type ActionSpec = (typeof ActionTable)[number];
export type ActionName = ActionSpec['name'];
export const ActionNames: readonly ActionName[] = ActionTable.map((a) => a.name);

/** The data fields of employee.leaving that request an action. */
export type LeaverFlag = NonNullable<ActionSpec['leaverFlag']>['field'];
export const LeaverFlags = ActionTable.flatMap((a) =>
  a.leaverFlag === undefined ? [] : [a.leaverFlag],
);

export function actionSpec(name: ActionName): ActionSpec {
  const spec = ActionTable.find((a) => a.name === name);
  if (spec === undefined) throw new Error(`Unknown action ${name}`);
  return spec;
}

/** The actions an event asks for, in execution order. */
export function plannedActions(
  request:
    | { kind: 'employee.leaving'; flags: Readonly<Record<LeaverFlag, boolean>> }
    | { kind: Exclude<EventKind, 'employee.leaving'> },
): ActionName[] {
  return ActionTable.filter((action) => {
    if (!(action.requestedBy as readonly EventKind[]).includes(request.kind)) return false;
    if (request.kind !== 'employee.leaving') return true;
    return action.leaverFlag === undefined || request.flags[action.leaverFlag.field];
  }).map((action) => action.name);
}
