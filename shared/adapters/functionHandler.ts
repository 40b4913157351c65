import { dueTimeOf } from '../core/settle';
import type { InvocationContext } from '@azure/functions';
import { revocationLatencyMs } from '../core/accessCutoff';
import { eventMessage } from '../core/events';
import { GUARDRAIL_TRIPPED } from '../core/guardrail';
import { Routes, type RouteName } from '../core/routes';
import type { Runtime } from '../app/runtime';
import { parseWatchMessage, type WatchMessage } from '../core/signInWatch';
import { runWatchCheck } from '../core/signInWatchRun';

/**
 * The log line of a departure that became delayed: past its due time by DEPARTURE_OVERDUE_MINUTES
 * and still retrying (Graph throttles or is down). Logged once per departure, on the run that
 * marks it delayed; the "departure delayed" alert looks for it (infra reads it through the contract).
 */
export const DEPARTURE_DELAYED =
  'DepartureDelayed: a departure is past its due time and still being retried';

/**
 * The log line of a sign-in watch that found a departed user signed in after the access cut-off.
 * Logged once per departure, by the check that recorded the incident; the "sign-in after cut-off"
 * alert looks for it (infra reads it through the contract).
 */
export const SIGNIN_AFTER_CUTOFF =
  'SignInAfterCutoff: a departed user signed in after the access cut-off';

export class SettlementError extends Error {
  override readonly name = 'SettlementError';
  constructor(
    message: string,
    readonly code: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** Replaces each given user identifier in a text with "<user>" (case-insensitively). */
export function redactUser(text: string, identifiers: (string | undefined)[]): string {
  let redacted = text;
  for (const identifier of identifiers) {
    if (identifier === undefined || identifier === '') continue;
    const pattern = new RegExp(identifier.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi');
    redacted = redacted.replace(pattern, '<user>');
  }
  return redacted;
}

/**
 * True inside the Functions host's Node worker: only there does `@azure/functions-core` answer
 * (the worker provides it; nothing installs it). Tests and `node -e "require(...)"` are not.
 */
export function underFunctionsHost(): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the host's own module
    require('@azure/functions-core');
    return true;
  } catch {
    return false;
  }
}

function messageIdOf(context: InvocationContext): string {
  const id = context.triggerMetadata?.messageId;
  return typeof id === 'string' && id !== '' ? id : `invocation:${context.invocationId}`;
}

function contentTypeOf(context: InvocationContext): string | undefined {
  const contentType = context.triggerMetadata?.contentType;
  return typeof contentType === 'string' && contentType !== '' ? contentType : undefined;
}

function applicationPropertiesOf(context: InvocationContext): Record<string, unknown> {
  const properties = context.triggerMetadata?.applicationProperties;
  return typeof properties === 'object' && properties !== null
    ? (properties as Record<string, unknown>)
    : {};
}

/** The event a triggered message carries, structured or binary content mode, in one shape. */
export function receivedEvent(
  message: unknown,
  context: InvocationContext,
): ReturnType<typeof eventMessage> {
  return eventMessage({
    body: message,
    contentType: contentTypeOf(context),
    properties: applicationPropertiesOf(context),
  });
}

/**
 * A Service Bus queue handler around the use case. The trigger completes the message when this
 * returns and abandons it when this throws (see QueueProcessor for which is which).
 */
export function createQueueHandler(runtime: () => Runtime, route: RouteName) {
  return async function handleQueueMessage(
    message: unknown,
    context: InvocationContext,
  ): Promise<void> {
    const { queueProcessor } = runtime();
    const messageId = messageIdOf(context);
    // Throws AuditUnavailable when the audit cannot be read or written: the host abandons the
    // message and it is delivered again, so nothing is lost.
    const { body, properties } = receivedEvent(message, context);
    // A sign-in watch check (scheduled by the app after a departure): never an HR event.
    const watch = route === 'employeeLeaving' ? parseWatchMessage(body) : undefined;
    if (watch !== undefined) return handleWatchCheck(runtime(), watch, context, messageId);
    const outcome = await queueProcessor.handle(route, { body, messageId, properties });
    const { result } = outcome;
    const { record } = result;
    // Ids and outcomes only: UPNs and reasons stay in the audit table.
    const summary = {
      eventId: record.eventId,
      messageId,
      deliveryCount: context.triggerMetadata?.deliveryCount,
      outcome: result.duplicate ? 'duplicate' : record.outcome,
      objectId: record.objectId,
      actions: record.actions.map((a) => `${a.action}:${a.status}`).join(','),
      verified: record.verification?.verified,
      attempts: record.attempts,
      duplicates: record.duplicates,
      idReused: record.idReused,
      errorCode: result.error?.code,
      nextAttemptAt: result.retry?.at,
      // Due time (first taken, or the leave date) to verified revocation, for the workbook's chart.
      revocationLatencySeconds: result.duplicate
        ? undefined
        : secondsOf(revocationLatencyMs(record)),
    };
    // Error texts can quote the user (Graph's 404 does); logs name the object id instead.
    const redact = (text: string) => redactUser(text, [record.user, record.userPrincipalName]);
    if (result.guardrailTrip !== undefined)
      // The alert (infra/modules/alerts.bicep) fires on this line: a feed is over its limit.
      context.error(GUARDRAIL_TRIPPED, {
        route,
        ...result.guardrailTrip,
        eventId: record.eventId,
      });
    if (result.delayedNow === true)
      // The "departure delayed" alert fires on this line. Ids and times only: no UPN, no message.
      context.warn(DEPARTURE_DELAYED, {
        route,
        eventId: record.eventId,
        source: record.source,
        // A departure, or a cancellation or reinstatement (they share the departures queue).
        eventType: record.eventType,
        objectId: record.objectId,
        // When the core counts the departure as due (shared/core/settle.ts): the leave date, else
        // when the app first took it.
        dueAt: dueTimeOf(record),
        delayedSince: record.delayedAt,
        errorCode: record.errorCode ?? result.error?.code,
        nextAttemptAt: result.retry?.at,
      });
    if (outcome.settlement === 'complete') {
      if (record.outcome === 'held' && !result.duplicate)
        context.warn(
          'Event held by the blast-radius guardrail (offboard guardrail status)',
          summary,
        );
      else if (result.retry)
        context.warn(
          result.error?.code === 'Deferred'
            ? 'Event waits (Graph write budget or another delivery running it); it comes back later'
            : 'Event failed transiently; retry scheduled',
          summary,
          redact(result.error?.message ?? ''),
        );
      else if (record.idReused)
        context.warn('Event processed; its id was used before for different content', summary);
      else context.log('Event processed', summary);
      return;
    }
    const code = result.error?.code ?? record.errorCode ?? 'Unexpected';
    const text = redact(result.error?.message ?? record.errorMessage ?? 'failed');
    const retryable = result.disposition === 'retry';
    if (retryable)
      context.warn(
        'Event failed and no retry could be scheduled; Service Bus redelivers it',
        summary,
        text,
      );
    else context.error('Event failed permanently; it goes to the dead-letter queue', summary, text);
    throw new SettlementError(
      `${retryable ? 'Retryable' : 'Permanent'} failure ${code} for event ${record.eventId}: ${text}`,
      code,
      retryable,
    );
  };
}

/**
 * One check of a departure's sign-in watch. Completes unless the audit or Service Bus failed (then
 * it throws and the message comes back). Ids, times and counts only in the logs: the sign-ins'
 * addresses and apps stay in the audit record and the outcome event.
 */
async function handleWatchCheck(
  runtime: Runtime,
  watch: WatchMessage,
  context: InvocationContext,
  messageId: string,
): Promise<void> {
  const result = await runWatchCheck(runtime.signInWatch, watch);
  const base = { messageId, check: watch.check };
  if (result.kind === 'ignored') {
    context.warn('Sign-in watch message ignored', { ...base, reason: result.reason });
    return;
  }
  if (result.kind === 'retry') {
    context.warn('Sign-in watch check could not read the sign-in log; it comes back later', {
      ...base,
      errorCode: result.error.code,
      nextAttemptAt: result.at,
    });
    return;
  }
  const { record, finding } = result;
  const summary = {
    ...base,
    eventId: record.eventId,
    source: record.source,
    objectId: record.objectId,
    verdict: finding.verdict,
    duplicate: result.kind === 'duplicate',
    successesAfterCutoff: finding.successesAfterCutoff,
    failedAttempts: finding.failedAttempts,
    errorCode: finding.errorCode,
  };
  if (result.incidentNow)
    // The alert (infra/modules/alerts.bicep) fires on this line, once per departure.
    context.error(SIGNIN_AFTER_CUTOFF, {
      ...summary,
      cutoffAt: record.signInWatch?.cutoffAt,
      firstSignInAt: finding.signIns?.[0]?.at,
    });
  else context.log('Sign-in watch check recorded', summary);
}

/** Registers every route's function on the Functions host: the queue name comes from its setting. */
export function registerRoutes(
  register: (
    name: string,
    options: {
      connection: string;
      queueName: string;
      handler: ReturnType<typeof createQueueHandler>;
    },
  ) => void,
  runtime: () => Runtime,
): void {
  for (const [route, spec] of Object.entries(Routes) as [RouteName, (typeof Routes)[RouteName]][]) {
    register(spec.functionName, {
      connection: 'ServiceBusConnection',
      queueName: `%${spec.queueSetting}%`,
      handler: createQueueHandler(runtime, route),
    });
  }
}

/** The same routes as local runner bindings (sandbox, benchmark, tests): one per queue. */
export function queueBindings(
  runtime: () => Runtime,
  queues: Readonly<Record<RouteName, string>>,
): Array<{
  functionName: string;
  queueName: string;
  handler: ReturnType<typeof createQueueHandler>;
}> {
  return (Object.keys(Routes) as RouteName[]).map((route) => ({
    functionName: Routes[route].functionName,
    queueName: queues[route],
    handler: createQueueHandler(runtime, route),
  }));
}

function secondsOf(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : ms / 1000;
}
