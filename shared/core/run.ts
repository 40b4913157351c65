/*
 * What one run of one delivery is made of: the types the orchestrator (offboard.ts) and its steps
 * (claim, departures, actionRun, reinstate, settle) share. A leaf: type-only imports, so no step ever
 * imports the orchestrator and the core has no import cycle.
 */
import type { SignInWatchSettings } from './signInWatch';
import type { KnownTimeline, Seen } from './personTimeline';
import type { Intent, Timeline } from './timeline';
import type { OffboardingError } from './errors';
import type { OffboardingEvent } from './events';
import type { EventDecision, Guardrail, GuardrailTrip } from './guardrail';
import type { OutgoingMessage, Scheduler } from './messaging';
import type { Secret } from './password';
import type {
  AuditLog,
  AuditRecord,
  Directory,
  DirectoryUser,
  FinalRecordSink,
  OperatorDecision,
  PolicyConfig,
  RecordKey,
  TimelineStore,
} from './ports';
import type { RetryPolicy } from './retryPolicy';
import type { RouteName } from './routes';
import type { WritePacer } from '../pacing/pacer';

/** One delivery of one message, from a Service Bus queue or from the command line. */
export interface Delivery {
  body: unknown;
  /** The route (queue) it came from, or `command` for a run by hand (every kind, no delayed retry). */
  route: RouteName | 'command';
  /** Service Bus MessageId, or a fresh id for a run by hand. */
  messageId: string;
  /** When Service Bus enqueued it (an event without `time` is placed on the timeline by it). */
  enqueuedAt?: string;
  /** Application properties as sent. Hints only: the audit record decides. */
  properties?: Readonly<Record<string, unknown>>;
  /**
   * The id this run claims the event under: a fresh one, or the one handed over by a run that
   * failed before it could record anything (see QueueProcessor).
   */
  runId?: string;
  /**
   * `offboard reinstate --force`: reinstate an account the audit does not show this app disabled,
   * on the word of the operator named here. Only a run by hand (route `command`) sets it; a queue
   * message never can.
   */
  force?: OperatorDecision;
}

/**
 * - done: finished (succeeded, dry run, duplicate, scheduled, superseded, or a later attempt parked).
 * - retry: a transient failure with no later attempt parked: deliver it again.
 * - reject: a permanent failure (invalid, refused, forbidden, given up): dead-letter it.
 */
export type Disposition = 'done' | 'retry' | 'reject';

export interface ProcessResult {
  disposition: Disposition;
  record: AuditRecord;
  /** The event had already finished (or was already waiting for its leave date); nothing was done. */
  duplicate: boolean;
  error?: OffboardingError;
  /** A copy parked for a later attempt (transient failure, or waiting for budget or a claim). */
  retry?: { at: string; messageId: string; sequenceNumber: string };
  /** This event tripped the blast-radius guardrail (the alert fires on it). */
  guardrailTrip?: GuardrailTrip;
  /** This departure became overdue on this run (the `delayed` alert fires on it). */
  delayedNow?: boolean;
}

export interface OffboardingDeps {
  directory: Directory;
  audit: AuditLog;
  /** The person timelines: every write is decided by the person's latest HR intent. */
  timelines: TimelineStore;
  policy: PolicyConfig;
  /** Parks copies: leave dates, delayed retries, deferrals. */
  scheduler: Scheduler;
  /** Queue name of each route (leave dates and retries go back to the event's own queue). */
  queues: Readonly<Record<RouteName, string>>;
  retry: RetryPolicy;
  /** The app-wide Graph write budget; unpaced when absent. */
  pacer?: WritePacer;
  /** Told of every final record after it is written (immutable log, outcome topic). */
  finalSinks?: readonly FinalRecordSink[];
  /** The sign-in watch after departures (SIGNIN_WATCH_ENABLED); off when absent. */
  signInWatch?: SignInWatchSettings;
  /** The blast-radius guardrail (shared by every instance); none when absent. */
  guardrail?: Guardrail;
  now?: () => Date;
  random?: () => number;
  generatePassword?: () => Secret;
}

/** The state of one run after its claim: everything the flows need. */
export interface Run {
  id: string;
  event: OffboardingEvent;
  key: RecordKey;
  delivery: Delivery;
  startedAt: Date;
  /** The record as it stood before this run (undefined for a new event). */
  prior: AuditRecord | undefined;
  /** The record this run will write at the end. */
  record: AuditRecord;
  /** An operator released this held event (`offboard guardrail release`). */
  release?: EventDecision;
  /**
   * This event's HR intent and the timeline version read when it was checked. `pending`: not
   * written yet (the commit point writes it, or the settlement when the run never got there).
   */
  admission?: { intent: Intent; seen: Seen; version: KnownTimeline | undefined; pending: boolean };
}

/** What a flow decided, before settlement (delayed retry) and the one final write. */
export interface FlowResult {
  disposition: Disposition;
  error?: OffboardingError;
  /** The run tripped the blast-radius guardrail. */
  trip?: GuardrailTrip;
}

/** A resolved person, with what their timeline says now (undefined for events outside it). */
export interface Resolved {
  user: DirectoryUser;
  /** The person's timeline after this event's intent was admitted (HR intents only). */
  timeline?: Timeline;
}

/**
 * What the flows of one run share (the orchestrator builds it): the ports, the clock, and the steps
 * every flow starts from.
 */
export interface FlowContext {
  deps: OffboardingDeps;
  now(): Date;
  pacer: WritePacer;
  makePassword(): Secret;
  /**
   * Resolves the user and puts the event on the person's timeline: an unknown or protected user,
   * or an event a later HR intent superseded, ends the flow now.
   */
  resolve(run: Run): Promise<Resolved | { flow: FlowResult }>;
  /** A copy of the delivered event for the same queue, keeping its scalar properties. */
  copyOf(
    delivery: Delivery,
    messageId: string,
    properties: Record<string, string | number>,
  ): OutgoingMessage;
}
