import { randomUUID } from 'node:crypto';
import { stableId } from './eventIdentity';
import {
  GuardrailNames,
  afterDecision,
  clockOf,
  countInWindow,
  guardrailOfRecord,
  reopened,
  routeOfGuardrail,
  emptyState,
  updateGuardrail,
  type EventDecision,
  type GuardrailName,
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
  route: GuardrailName;
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

async function heldOf(audit: AuditLog, route: GuardrailName): Promise<AuditRecord[]> {
  return (await audit.listByOutcome('held'))
    .map((stored) => stored.record)
    .filter((record) => guardrailOfRecord(record) === route);
}

export async function guardrailStatus(
  deps: GuardrailOpsDeps,
  limits: GuardrailLimits,
  percentOfEnabledUsers: Partial<Record<GuardrailName, number>> = {},
): Promise<RouteStatus[]> {
  const now = (deps.now ?? (() => new Date()))();
  const statuses: RouteStatus[] = [];
  for (const route of GuardrailNames) {
    const stored = await deps.store.read(route);
    const state = stored?.state ?? emptyState();
    const limit = limits[route];
    const held = await heldOf(deps.audit, route);
    statuses.push({
      route,
      ...limit,
      percentOfEnabledUsers: percentOfEnabledUsers[route] ?? 0,
      executedInWindow: countInWindow(
        state,
        limit,
        clockOf(now.getTime(), stored?.storeTime).windowEnd,
      ),
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
  route: GuardrailName;
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
  /** Held events left without a decision (those the command saw, or the trip counted if more). */
  stillHeld: number;
  /** The trip cleared: every event held under it has a decision. */
  tripCleared: boolean;
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
  // The trip the held events were held under: each decision names it, and the trip clears once
  // as many of its events have a decision as it held.
  const trip = tripNumber((await deps.store.read(request.route))?.state);
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
    tripCleared: false,
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
          ...(trip === undefined ? {} : { trip }),
        }));
      const heldEvent = record.guardrail?.heldEvent;
      if (heldEvent === undefined) {
        result.resendNeeded.push(record.eventId);
        continue;
      }
      const when = kind === 'release' ? request.enqueueAt(index, work.length) : new Date(at);
      const messageId = `${AppMessageIdPrefixes.release}${stableId(decision.approvalId, record.identityKey, record.contentDigest)}`;
      await deps.scheduler.schedule(
        deps.queues[routeOfGuardrail(request.route)],
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
  // Decided inside the conditional write that would clear the trip: an event held meanwhile
  // raised the trip's count (and its ETag), so the write is redone and the trip stays.
  const decision: GuardrailDecision = {
    action: kind,
    count: chosen.length,
    approval: approvalId,
    by: request.by,
    reason: request.reason,
    at,
  };
  const after = await updateGuardrail(deps.store, request.route, async (current) => {
    const number = tripNumber(current);
    const decided =
      number === undefined
        ? undefined
        : { trip: number, count: await deps.store.decidedInTrip(request.route, number) };
    const next = afterDecision(current, decision, decided);
    return { next, result: { next, decided } };
  });
  result.tripCleared = after.next.trip === undefined;
  if (!result.tripCleared && after.decided !== undefined)
    result.stillHeld = Math.max(
      result.stillHeld,
      (after.next.trip?.held ?? 0) - after.decided.count,
    );
  return result;
}

/** The number of the state's trip (0 for a trip recorded without one); undefined: not tripped. */
const tripNumber = (state: { trip?: GuardrailTrip } | undefined) =>
  state?.trip === undefined ? undefined : (state.trip.number ?? 0);

/**
 * `offboard guardrail reopen`: an operator opens the gate on purpose, once no held event waits
 * for a decision: the trip clears and the window starts again from now. Resolves to the held
 * events still undecided when it refused (none: reopened).
 */
export async function reopenGuardrail(
  deps: GuardrailOpsDeps,
  request: { route: GuardrailName; by: string; reason: string },
): Promise<{ reopened: boolean; undecided: string[] }> {
  const at = (deps.now ?? (() => new Date()))().toISOString();
  const undecided: string[] = [];
  for (const record of await heldOf(deps.audit, request.route))
    if ((await deps.store.decisionFor(request.route, record)) === undefined)
      undecided.push(record.eventId);
  if (undecided.length > 0) return { reopened: false, undecided };
  await updateGuardrail(deps.store, request.route, (current) => ({
    next: reopened(current, {
      action: 'reopen',
      count: 0,
      by: request.by,
      reason: request.reason,
      at,
    }),
    result: undefined,
  }));
  return { reopened: true, undecided };
}

/**
 * `offboard enqueue`: the wave is an operator's deliberate act, approving exactly its events (the
 * digest of their record keys); each runs past the window's limit, not counted in it.
 */
export function approveWave(
  store: GuardrailStore,
  route: GuardrailName,
  wave: string,
  approval: Omit<WaveApproval, 'used' | 'roots'> & { root: string },
): Promise<void> {
  return updateGuardrail(store, route, (current) => ({
    next: withWaveApproval(current, wave, approval),
    result: undefined,
  }));
}
