import { randomUUID } from 'node:crypto';
import { updateRecord } from './auditRecords';
import { stableId } from './eventIdentity';
import { deliverFinal } from './flow';
import {
  GuardedRoutes,
  afterDecision,
  countInWindow,
  emptyState,
  updateGuardrail,
  type GuardedRoute,
  type GuardrailDecision,
  type GuardrailLimits,
  type GuardrailTrip,
  type GuardrailStore,
  type WaveApproval,
  withWaveApproval,
} from './guardrail';
import { AppMessageIdPrefixes, MessageProperties, type Scheduler } from './messaging';
import type { AuditLog, AuditRecord, FinalRecordSink, OperatorDecision } from './ports';
import type { RouteName } from './routes';

/*
 * What an operator does with the guardrail (`offboard guardrail status | release | discard`).
 * Every decision is kept on each event's record (who, why, when) and on the guardrail's record.
 */

export interface GuardrailOpsDeps {
  audit: AuditLog;
  store: GuardrailStore;
  scheduler: Scheduler;
  queues: Readonly<Record<RouteName, string>>;
  finalSinks: readonly FinalRecordSink[];
  now?: () => Date;
}

export interface HeldSummary {
  eventId: string;
  user?: string;
  heldAt?: string;
  /** Released by an operator; its copy has not run yet. */
  releasedBy?: string;
}

export interface RouteStatus {
  route: GuardedRoute;
  maxPerWindow: number;
  windowMinutes: number;
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
      executedInWindow: countInWindow(state, limit, now.getTime()),
      ...(state.trip === undefined ? {} : { trip: state.trip }),
      trips: state.trips,
      held: held.map((record) => ({
        eventId: record.eventId,
        ...(record.user === undefined ? {} : { user: record.user }),
        ...(record.guardrail?.heldAt === undefined ? {} : { heldAt: record.guardrail.heldAt }),
        ...(record.guardrail?.release === undefined
          ? {}
          : { releasedBy: record.guardrail.release.by }),
      })),
      approvals: Object.entries(state.approvals)
        .filter(([, approval]) => Date.parse(approval.expiresAt) > now.getTime())
        .map(([wave, approval]) => ({ wave, ...approval })),
      decisions: state.decisions,
    });
  }
  return statuses;
}

export interface ReleaseRequest {
  route: GuardedRoute;
  by: string;
  reason: string;
  /** At most this many (oldest first); all when undefined. */
  max?: number;
  /** When the i-th released event is enqueued (released events run paced, like a wave). */
  enqueueAt: (index: number, count: number) => Date;
}

export interface ReleaseResult {
  approvalId: string;
  released: Array<{ eventId: string; messageId?: string; at?: string; note?: string }>;
  stillHeld: number;
  failures: Array<{ eventId: string; error: string }>;
}

/**
 * Releases held events: each record is marked released (the approval: who, why, when) before its
 * event is sent again, so the copy, or any resend of the same content, runs without being counted.
 * Marked-but-unsent events (a failed earlier release) are sent again under their first approval;
 * the copy's MessageId is deterministic, so Service Bus drops a second copy.
 */
export async function releaseHeld(
  deps: GuardrailOpsDeps,
  request: ReleaseRequest,
): Promise<ReleaseResult> {
  const now = (deps.now ?? (() => new Date()))();
  const at = now.toISOString();
  const approvalId = randomUUID();
  const held = await heldOf(deps.audit, request.route);
  const chosen = held.slice(0, request.max ?? held.length);
  const result: ReleaseResult = { approvalId, released: [], stillHeld: 0, failures: [] };
  for (const [index, record] of chosen.entries()) {
    try {
      const marked = await updateRecord<boolean>(deps.audit, record, (current) => {
        if (current?.outcome !== 'held') return { verdict: false };
        if (current.guardrail?.release !== undefined) return { verdict: true };
        const release = { approvalId, by: request.by, reason: request.reason, at };
        return {
          next: {
            ...current,
            guardrail: { ...current.guardrail, release },
            notes: [...current.notes, `Released by ${request.by} at ${at}: ${request.reason}`],
          },
          verdict: true,
        };
      });
      const current = marked.record;
      if (!marked.verdict || current === undefined) continue;
      const release = current.guardrail?.release;
      const heldEvent = current.guardrail?.heldEvent;
      if (release === undefined) continue;
      if (heldEvent === undefined) {
        result.released.push({
          eventId: current.eventId,
          note: 'released; the event was too large to keep: it runs when its sender sends it again',
        });
        continue;
      }
      const when = request.enqueueAt(index, chosen.length);
      const messageId = `${AppMessageIdPrefixes.release}${stableId(release.approvalId, current.identityKey, current.contentDigest)}`;
      await deps.scheduler.schedule(
        deps.queues[request.route],
        {
          body: JSON.parse(heldEvent) as unknown,
          messageId,
          contentType: 'application/json',
          applicationProperties: {
            [MessageProperties.guardrailRelease]: release.approvalId,
            ...(current.messageId === undefined
              ? {}
              : { [MessageProperties.originalMessageId]: current.messageId }),
          },
        },
        when,
      );
      result.released.push({ eventId: current.eventId, messageId, at: when.toISOString() });
    } catch (error) {
      result.failures.push({
        eventId: record.eventId,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  const remaining = await heldOf(deps.audit, request.route);
  result.stillHeld = remaining.filter((r) => r.guardrail?.release === undefined).length;
  await recordDecision(
    deps,
    request.route,
    {
      action: 'release',
      count: result.released.length,
      approval: approvalId,
      by: request.by,
      reason: request.reason,
      at,
    },
    result.stillHeld,
  );
  return result;
}

export interface DiscardResult {
  discarded: string[];
  failures: Array<{ eventId: string; error: string }>;
}

/**
 * Discards every held event of a route: each record becomes `discarded` (final: it never runs,
 * a resend is a duplicate) with who and why, and goes to the immutable log and the outcome topic.
 */
export async function discardHeld(
  deps: GuardrailOpsDeps,
  request: { route: GuardedRoute } & Omit<OperatorDecision, 'at'>,
): Promise<DiscardResult> {
  const at = (deps.now ?? (() => new Date()))().toISOString();
  const result: DiscardResult = { discarded: [], failures: [] };
  for (const record of await heldOf(deps.audit, request.route)) {
    try {
      const written = await updateRecord<boolean>(deps.audit, record, (current) => {
        if (current?.outcome !== 'held') return { verdict: false };
        const discard = { by: request.by, reason: request.reason, at };
        return {
          next: {
            ...current,
            outcome: 'discarded',
            guardrail: { ...current.guardrail, discard },
            notes: [...current.notes, `Discarded by ${request.by} at ${at}: ${request.reason}`],
          },
          verdict: true,
        };
      });
      if (!written.verdict || written.record === undefined) continue;
      result.discarded.push(record.eventId);
      await deliverFinal(deps.finalSinks, written.record);
    } catch (error) {
      result.failures.push({
        eventId: record.eventId,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  const remaining = await heldOf(deps.audit, request.route);
  await recordDecision(
    deps,
    request.route,
    {
      action: 'discard',
      count: result.discarded.length,
      by: request.by,
      reason: request.reason,
      at,
    },
    remaining.length,
  );
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

function recordDecision(
  deps: GuardrailOpsDeps,
  route: GuardedRoute,
  decision: GuardrailDecision,
  stillHeld: number,
): Promise<void> {
  return updateGuardrail(deps.store, route, (current) => ({
    next: afterDecision(current, decision, stillHeld),
    result: undefined,
  }));
}
