/**
 * The use case and the settlement wired to the in-memory fakes, with a directory of the kinds of
 * user the rules are about, and builders for events and deliveries.
 */
import { randomUUID } from 'node:crypto';
import {
  SharedGuardrail,
  type GuardrailLimits,
  type GuardrailStore,
} from '../../shared/core/guardrail';
import { OffboardingService, type Delivery, type ProcessResult } from '../../shared/core/offboard';
import { Secret } from '../../shared/core/password';
import { QueueProcessor, type QueueOutcome } from '../../shared/core/queueProcessing';
import type { FinalRecordSink } from '../../shared/core/ports';
import type { RetryPolicy } from '../../shared/core/retryPolicy';
import type { RouteName } from '../../shared/core/routes';
import type { SignInWatchSettings } from '../../shared/core/signInWatch';
import {
  FakeDirectory,
  FakePacer,
  FakeScheduler,
  MemoryAuditLog,
  MemoryGuardrailStore,
  MemoryTimelineStore,
  TestClock,
  fixedRandom,
  type FakeUser,
} from '../support/fakes';

export const QUEUES = { employeeLeaving: 'employee-leaving', mfaEnabled: 'mfa-enabled' } as const;
export const RETRY: RetryPolicy = { maxAttempts: 3, baseDelaySeconds: 10, maxDelaySeconds: 300 };
export const SOURCE = '/hr/workday';

/** The one password every reset in these tests "generates": it must never show up anywhere. */
export const KNOWN_PASSWORD = 'Kn0wn-Pa55word-Never-Shown!';

export const PROTECTED_UPN = 'BreakGlass@contoso.com';
export const PROTECTED_ID = 'ffffffff-0000-4000-8000-00000000b00b';

export interface Core {
  clock: TestClock;
  audit: MemoryAuditLog;
  directory: FakeDirectory;
  scheduler: FakeScheduler;
  pacer: FakePacer;
  /** The person timelines. */
  timelines: MemoryTimelineStore;
  /** The guardrail's records (used only when the `guardrail` option turns the guardrail on). */
  guardrailStore: MemoryGuardrailStore;
  service: OffboardingService;
  processor: QueueProcessor;
  users: {
    alice: FakeUser;
    bob: FakeUser;
    dave: FakeUser;
    carol: FakeUser;
    erin: FakeUser;
    breakglass: FakeUser;
    vault: FakeUser;
  };
  /** OffboardingService.process on a delivery. */
  process(delivery: Delivery): Promise<ProcessResult>;
  /** QueueProcessor.handle, as the Service Bus trigger calls it. */
  handle(
    route: RouteName,
    message: { body: unknown; messageId: string; properties?: Record<string, unknown> },
  ): Promise<QueueOutcome>;
}

/** Limits that nothing in a test reaches: a guardrail that is on but never trips. */
export const UNREACHED_GUARDRAIL: GuardrailLimits = {
  employeeLeaving: { maxPerWindow: 1_000_000, windowMinutes: 60 },
  mfaEnabled: { maxPerWindow: 1_000_000, windowMinutes: 60 },
  employeeReinstated: { maxPerWindow: 1_000_000, windowMinutes: 60 },
};

export interface CoreOptions {
  dryRun?: boolean;
  retry?: RetryPolicy;
  /**
   * Turns the blast-radius guardrail on with these limits (routes not given never trip), over
   * `guardrailStore` or, by default, the core's MemoryGuardrailStore. Off when absent.
   */
  guardrail?: Partial<GuardrailLimits>;
  guardrailStore?: GuardrailStore;
  /** Told of every final record, in this order. */
  finalSinks?: readonly FinalRecordSink[];
  /** The sign-in watch after departures; off when absent. */
  signInWatch?: SignInWatchSettings;
}

export function makeCore(options: CoreOptions = {}): Core {
  const clock = new TestClock();
  const random = fixedRandom(0.5);
  const audit = new MemoryAuditLog();
  const directory = new FakeDirectory(clock);
  const scheduler = new FakeScheduler();
  const pacer = new FakePacer();
  const guardrailStore = new MemoryGuardrailStore();
  const timelines = new MemoryTimelineStore();
  const retry = options.retry ?? RETRY;
  const users = {
    alice: directory.addUser({ userPrincipalName: 'alice@contoso.com' }),
    bob: directory.addUser({ userPrincipalName: 'bob@contoso.com' }),
    dave: directory.addUser({
      userPrincipalName: 'dave.synced@contoso.com',
      onPremisesSyncEnabled: true,
    }),
    carol: directory.addUser({
      userPrincipalName: 'carol_fabrikam.com#EXT#@contoso.onmicrosoft.com',
      userType: 'Guest',
    }),
    erin: directory.addUser({
      userPrincipalName: 'erin.admin@contoso.com',
      adminRole: 'Global Administrator',
    }),
    breakglass: directory.addUser({ userPrincipalName: 'breakglass@contoso.com' }),
    vault: directory.addUser({ id: PROTECTED_ID, userPrincipalName: 'vault.admin@contoso.com' }),
  };
  const service = new OffboardingService({
    directory,
    audit,
    timelines,
    policy: {
      protectedUsers: new Set([PROTECTED_UPN.toLowerCase(), PROTECTED_ID]),
      dryRun: options.dryRun ?? false,
    },
    scheduler,
    queues: QUEUES,
    retry,
    pacer,
    now: clock.now,
    random,
    generatePassword: () => new Secret(KNOWN_PASSWORD),
    ...(options.guardrail === undefined
      ? {}
      : {
          guardrail: new SharedGuardrail(
            options.guardrailStore ?? guardrailStore,
            { ...UNREACHED_GUARDRAIL, ...options.guardrail },
            clock.now,
          ),
        }),
    ...(options.finalSinks === undefined ? {} : { finalSinks: options.finalSinks }),
    ...(options.signInWatch === undefined ? {} : { signInWatch: options.signInWatch }),
  });
  const processor = new QueueProcessor({
    offboarding: service,
    scheduler,
    queues: QUEUES,
    retry,
    now: clock.now,
    random,
  });
  return {
    clock,
    audit,
    directory,
    scheduler,
    pacer,
    timelines,
    guardrailStore,
    service,
    processor,
    users,
    process: (delivery) => service.process(delivery),
    handle: (route, message) => processor.handle(route, message),
  };
}

let eventCounter = 0;

interface Envelope {
  id?: string;
  source?: string;
  type?: string;
  /** The event's `time`; by default one second after the previous event built (HR order). */
  time?: string;
}

const FIRST_EVENT_TIME = Date.parse('2026-11-30T08:00:00Z');

function cloudEvent(type: string, data: Record<string, unknown>, envelope: Envelope) {
  eventCounter += 1;
  return {
    specversion: '1.0',
    id: envelope.id ?? `evt-${eventCounter}`,
    source: envelope.source ?? SOURCE,
    type: envelope.type ?? type,
    time: envelope.time ?? new Date(FIRST_EVENT_TIME + eventCounter * 1000).toISOString(),
    datacontenttype: 'application/json',
    data,
  };
}

export function leaving(
  user: string,
  data: { disableAccount?: boolean; resetPassword?: boolean; effectiveAt?: string } = {},
  envelope: Envelope = {},
) {
  return cloudEvent('com.contoso.hr.employee.leaving', { user, ...data }, envelope);
}

export function reinstatedEvent(
  user: string,
  data: { reason?: string; departureEvent?: string } = {},
  envelope: Envelope = {},
) {
  return cloudEvent('com.contoso.hr.employee.reinstated', { user, ...data }, envelope);
}

export function leavingCancelled(user: string, envelope: Envelope = {}) {
  return cloudEvent('com.contoso.hr.employee.leaving.cancelled', { user }, envelope);
}

export function mfaEnabled(user: string, envelope: Envelope = {}) {
  return cloudEvent('com.contoso.mfa.enabled', { user }, envelope);
}

/** A first delivery from a queue (or from the command line). */
export function delivery(
  body: unknown,
  options: {
    route?: Delivery['route'];
    messageId?: string;
    properties?: Record<string, unknown>;
    runId?: string;
  } = {},
): Delivery {
  return {
    body,
    route: options.route ?? 'employeeLeaving',
    messageId: options.messageId ?? `msg-${randomUUID()}`,
    ...(options.properties === undefined ? {} : { properties: options.properties }),
    ...(options.runId === undefined ? {} : { runId: options.runId }),
  };
}

/** A message as the trigger hands it to QueueProcessor. */
export function message(
  body: unknown,
  options: { messageId?: string; properties?: Record<string, unknown> } = {},
) {
  return {
    body,
    messageId: options.messageId ?? `msg-${randomUUID()}`,
    ...(options.properties === undefined ? {} : { properties: options.properties }),
  };
}

/** The statuses of a record's actions, by action. */
export function statuses(record: { actions: Array<{ action: string; status: string }> }) {
  return Object.fromEntries(record.actions.map((a) => [a.action, a.status]));
}
