import type { EventKind } from './events';
import type { Lane } from '../pacing/pacer';

/**
 * The app's routes: one Service Bus queue and function each. Functions register from this table,
 * and the local runner, sandbox, benchmark and tests use the same rows.
 */
export const Routes = {
  employeeLeaving: {
    functionName: 'employeeLeaving',
    queueSetting: 'EMPLOYEE_LEAVING_QUEUE',
    accepts: ['employee.leaving', 'employee.leaving.cancelled', 'employee.reinstated'],
    lane: 'departure',
  },
  mfaEnabled: {
    functionName: 'mfaEnabled',
    queueSetting: 'MFA_ENABLED_QUEUE',
    accepts: ['mfa.enabled'],
    lane: 'wave',
  },
} as const satisfies Record<
  string,
  { functionName: string; queueSetting: string; accepts: readonly EventKind[]; lane: Lane }
>;

export type RouteName = keyof typeof Routes;
export const RouteNames = Object.keys(Routes) as RouteName[];

/** The route whose queue takes events of this kind (each kind belongs to exactly one route). */
export function routeOfKind(kind: EventKind): RouteName {
  const route = RouteNames.find((name) =>
    (Routes[name].accepts as readonly EventKind[]).includes(kind),
  );
  if (route === undefined) throw new Error(`No route takes ${kind}`);
  return route;
}
