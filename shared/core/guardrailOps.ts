import { randomUUID } from 'node:crypto';
import { stableId } from './eventIdentity';
import {
  GuardedRoutes,
  afterDecision,
  countInWindow,
  emptyState,
  updateGuardrail,
  type EventDecision,
  type GuardedRoute,
  type GuardrailDecision,
  type GuardrailLimits,
  type GuardrailTrip,
  type GuardrailStore,
  type WaveApproval,
  withWaveApproval,
} from './guardrail';
import { AppMessageIdPrefixes, MessageProperties, type Scheduler } from './messaging';
import type { AuditLog, AuditRecord } from './ports';
import type { RouteName } from './routes';

/*
 * What an operator does with the guardrail (`offboard guardrail status | release | discard`).
 * Operators write only the guardrail's table (each decision: who, why, when); the app applies a
 * decision when the held event comes back through its queue, and records it on the event's record.
 */

export interface GuardrailOpsDeps {
  audit: AuditLog;
  store: GuardrailStore;
  scheduler: Scheduler;
  queues: Readonly<Record<RouteName, string>>;
  now?: () => Date;
}

export interface HeldSummary {
  eventId: string;
  user?: string;
  heldAt?: string;
  /** An operator decided about it; the app applies it when the event comes back. */
  decision?: { kind: 'release' | 'discard'; by: string };
}

export interface RouteStatus {
  route: GuardedRoute;
  maxPerWindow: number;
  windowMinutes: number;
  /** The optional share-of-tenant limit (percent of enabled users per window; 0: off). */
  percentOfEnabledUsers: number;
  executedInWindow: number;
  trip?: GuardrailTrip;
  trips: number;
  held: HeldSummary[];
  approvals: Array<WaveApproval & { wave: string }>;
  decisions: GuardrailDecision[];
}

async function heldOf(audit: AuditLog, route: GuardedRoute): Promise<AuditRecord[]> {
  return (await audit.listByOutcome('held'))
    .map((stored) => stored.record)
    .filter((record) => record.route === route);
}

export async function guardrailStatus(
  deps: GuardrailOpsDeps,
  limits: GuardrailLimits,
  percentOfEnabledUsers: Partial<Record<GuardedRoute, number>> = {},
): Promise<RouteStatus[]> {
  const now = (deps.now ?? (() => new Date()))();
  const statuses: RouteStatus[] = [];
  for (const route of GuardedRoutes) {
    const state = (await deps.store.read(route))?.state ?? emptyState();
    const limit = limits[route];
    const held = await heldOf(deps.audit, route);
    statuses.push({
      route,
      ...limit,
      percentOfEnabledUsers: percentOfEnabledUsers[route] ?? 0,
      executedInWindow: countInWindow(state, limit, now.getTime()),
      ...(state.trip === undefined ? {} : { trip: state.trip }),
      trips: state.trips,
      held: await Promise.all(
        held.map(async (record) => {
          const decision = await deps.store.decisionFor(route, record);
          return {
            eventId: record.eventId,
            ...(record.user === undefined ? {} : { user: record.user }),
            ...(record.guardrail?.heldAt === undefined ? {} : { heldAt: record.guardrail.heldAt }),
            ...(decision === undefined
              ? {}
              : { decision: { kind: decision.kind, by: decision.by } }),
          };
        }),
      ),
      approvals: Object.entries(state.approvals)
        .filter(([, approval]) => Date.parse(approval.expiresAt) > now.getTime())
        .map(([wave, approval]) => ({ wave, ...approval })),
      decisions: state.decisions,
    });
  }
  return statuses;
}

export interface DecisionRequest {
  route: GuardedRoute;
  by: string;
  reason: string;
  /** At most this many (oldest first); all when undefined. */
  max?: number;
  /** When the i-th event is sent back (released events run paced, like a wave). */
  enqueueAt: (index: number, count: number) => Date;
}

export interface DecisionResult {
  approvalId: string;
  /** Events decided about and sent back through their queue (the app applies the decision). */
  sent: Array<{ eventId: string; messageId: string; at: string; decision: 'release' | 'discard' }>;
  /** Decided about, but the event is not on its record (too large): its sender must resend it. */
  resendNeeded: string[];
  /** Held events left without a decision. */
  stillHeld: number;
  failures: Array<{ eventId: string; error: string }>;
}

/**
 * Releases or discards held events. The operator's decision is recorded per event in the
 * guardrail's table (who, why, when; the first decision about an event stands), then the held
 * event is sent back through its queue: the app applies the decision there, so the audit record,
 * the immutable log and the outcome topic are written by the app's identity only. A re-run sends
 * the same copies again (deterministic MessageIds: Service Bus drops the second).
 */
export async function decideHeld(
  deps: GuardrailOpsDeps,
  kind: 'release' | 'discard',
  request: DecisionRequest,
): Promise<DecisionResult> {
  const at = (deps.now ?? (() => new Date()))().toISOString();
  const approvalId = randomUUID();
  const held = await heldOf(deps.audit, request.route);
  const undecided: AuditRecord[] = [];
  const decided: Array<{ record: AuditRecord; decision: EventDecision }> = [];
  for (const record of held) {
    const decision = await deps.store.decisionFor(request.route, record);
    if (decision === undefined) undecided.push(record);
    else decided.push({ record, decision });
  }
  // Earlier decisions whose copy may not have been sent are sent again first; then new ones.
  const chosen = undecided.slice(0, request.max ?? undecided.length);
  const result: DecisionResult = {
    approvalId,
    sent: [],
    resendNeeded: [],
    stillHeld: undecided.length - chosen.length,
    failures: [],
  };
  const work = [
    ...decided.filter((d) => d.decision.kind === kind),
    ...chosen.map((record) => ({ record, decision: undefined })),
  ];
  for (const [index, item] of work.entries()) {
    const { record } = item;
    try {
      const decision =
        item.decision ??
        (await deps.store.decide(request.route, record, {
          kind,
          approvalId,
          by: request.by,
          reason: request.reason,
          at,
        }));
      const heldEvent = record.guardrail?.heldEvent;
      if (heldEvent === undefined) {
        result.resendNeeded.push(record.eventId);
        continue;
      }
      const when = kind === 'release' ? request.enqueueAt(index, work.length) : new Date(at);
      const messageId = `${AppMessageIdPrefixes.release}${stableId(decision.approvalId, record.identityKey, record.contentDigest)}`;
      await deps.scheduler.schedule(
        deps.queues[request.route],
        {
          body: JSON.parse(heldEvent) as unknown,
          messageId,
          contentType: 'application/json',
          applicationProperties: {
            [MessageProperties.guardrailDecision]: `${decision.kind}:${decision.approvalId}`,
            ...(record.messageId === undefined
              ? {}
              : { [MessageProperties.originalMessageId]: record.messageId }),
          },
        },
        when,
      );
      result.sent.push({
        eventId: record.eventId,
        messageId,
        at: when.toISOString(),
        decision: decision.kind,
      });
    } catch (error) {
      result.failures.push({
        eventId: record.eventId,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  await updateGuardrail(deps.store, request.route, (current) => ({
    next: afterDecision(
      current,
      {
        action: kind,
        count: chosen.length,
        approval: approvalId,
        by: request.by,
        reason: request.reason,
        at,
      },
      result.stillHeld,
    ),
    result: undefined,
  }));
  return result;
}

/**
 * `offboard enqueue`: the wave is an operator's deliberate act, approved with its size as the
 * ceiling: up to that many events carrying its id run past the window's limit (not counted in it).
 */
export function approveWave(
  store: GuardrailStore,
  route: GuardedRoute,
  wave: string,
  approval: Omit<WaveApproval, 'used'>,
): Promise<void> {
  return updateGuardrail(store, route, (current) => ({
    next: withWaveApproval(current, wave, approval),
    result: undefined,
  }));
}
