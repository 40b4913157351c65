/** A message the app puts (back) on one of its queues. */
export interface OutgoingMessage {
  body: unknown;
  messageId: string;
  contentType?: string;
  applicationProperties: Record<string, string | number | boolean>;
}

/** Schedules messages on the app's queues: delayed retries and leave dates. */
export interface Scheduler {
  /** Returns the Service Bus sequence number (as text: it is a 64-bit integer). */
  schedule(queue: string, message: OutgoingMessage, at: Date): Promise<string>;
  /** Returns false when the message is no longer scheduled (already enqueued or cancelled). */
  cancel(queue: string, sequenceNumber: string): Promise<boolean>;
}

/** Application properties the app sets on the copies it schedules. */
export const MessageProperties = {
  /** 1-based processing attempt this copy carries. */
  attempt: 'offboardingAttempt',
  /** MessageId of the message first received for this event. */
  originalMessageId: 'offboardingOriginalMessageId',
  /**
   * Set on the copy parked after an audit outage: the claim id of the run that could not record
   * its end, so the copy runs under that claim at once instead of waiting out the lease.
   */
  claimHandover: 'offboardingClaimHandover',
  /** Set on the copy scheduled for a leave date: act when it arrives. */
  scheduledFor: 'offboardingScheduledFor',
  /** Replay metadata, set by `offboard dlq replay`. */
  replayedBy: 'offboardingReplayedBy',
  replayedAt: 'offboardingReplayedAt',
  replayOf: 'offboardingReplayOf',
  /** Who sent an `offboard enqueue` wave. */
  enqueuedBy: 'offboardingEnqueuedBy',
  /** The `offboard enqueue` wave an event belongs to: its approval for the guardrail. */
  wave: 'offboardingWave',
  /** The event's path to its wave approval's digest (waveApproval.ts): proves it is in the file. */
  waveProof: 'offboardingWaveProof',
  /** Set by `offboard guardrail release|discard` on the copy it sends back (informational: the decision in the guardrail table is what counts). */
  guardrailDecision: 'offboardingGuardrailDecision',
} as const;

/** The properties of a received message that can be carried onto a copy (scalars only). */
export function scalarProperties(
  properties: Readonly<Record<string, unknown>>,
): Record<string, string | number | boolean> {
  const scalars: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(properties)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      scalars[key] = value;
  }
  return scalars;
}

/**
 * MessageId prefixes of the messages the app (or the offboard command) puts on its queues itself.
 * Anything else came from a publisher: the "no HR events" alert counts only those (infra reads
 * this list through infra/contract.json).
 */
export const AppMessageIdPrefixes = {
  /** A delayed retry after a transient failure. */
  retry: 'retry-',
  /** A copy waiting for the write budget or for another run's claim (no attempt used). */
  wait: 'wait-',
  /** A retry after the audit store was unreachable. */
  outage: 'outage-',
  /** The copy scheduled for a leave date. */
  leaveDate: 'leave-',
  /** `offboard dlq replay`. */
  replay: 'replay-',
  /** `offboard guardrail release` or `discard`: a held event sent back with its decision. */
  release: 'guardrail-',
  /** A sign-in watch check after a departure, or its retry (SIGNIN_WATCH_ENABLED). */
  signInWatch: 'watch-',
  /** `offboard process` (never on a queue, but in the audit). */
  command: 'cli:',
} as const;
