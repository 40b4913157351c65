/**
 * Outcome events (shared/core/outcomeEvent.ts) from the records the use case really writes (the
 * in-memory harness), plus crafted records for outcomes another part produces (held, reinstated).
 */
import { ErrorCodes } from '../../shared/core/errors';
import {
  AnnouncedOutcomes,
  toWatchEvent,
  OUTCOME_EVENT_SOURCE,
  OUTCOME_MESSAGE_MAX_CHARS,
  announcedOutcome,
  outcomeProperties,
  toOutcomeEvent,
  type OutcomeEvent,
} from '../../shared/core/outcomeEvent';
import type { AuditRecord } from '../../shared/core/ports';
import {
  KNOWN_PASSWORD,
  PROTECTED_UPN,
  SOURCE,
  delivery,
  leaving,
  leavingCancelled,
  makeCore,
  mfaEnabled,
} from './harness';

function eventOf(record: AuditRecord): OutcomeEvent {
  const event = toOutcomeEvent(record);
  if (event === undefined) throw new Error(`no outcome event for a ${record.outcome} record`);
  return event;
}

/** A final record as the audit keeps it, for outcomes other parts of the app produce. */
function finalRecord(overrides: Partial<AuditRecord>): AuditRecord {
  return {
    identityKey: 'k1',
    contentDigest: 'd1',
    eventId: 'evt-x',
    eventType: 'employee.leaving',
    source: SOURCE,
    route: 'employeeLeaving',
    user: 'x@contoso.com',
    requestedActions: [],
    actions: [],
    graphRequestIds: [],
    outcome: 'succeeded',
    notes: [],
    dryRun: false,
    attempts: 1,
    duplicates: 0,
    firstAttemptAt: '2026-11-30T09:00:00.000Z',
    lastAttemptAt: '2026-11-30T09:00:01.000Z',
    ...overrides,
  };
}

describe('a succeeded departure', () => {
  it('is a CloudEvents 1.0 event naming the original event, the user, each action, the verification and the cut-off', async () => {
    const core = makeCore();
    const body = leaving('alice@contoso.com', { disableAccount: true, resetPassword: true });
    const { record } = await core.process(delivery(body));
    expect(record.outcome).toBe('succeeded');
    const event = eventOf({ ...record, ticket: 'HR-42' });

    expect(event).toMatchObject({
      specversion: '1.0',
      source: OUTCOME_EVENT_SOURCE,
      type: 'offboarding.outcome.succeeded',
      subject: core.users.alice.id,
      time: record.lastAttemptAt,
      datacontenttype: 'application/json',
      outcome: 'succeeded',
    });
    expect(event.id).toMatch(/^[0-9a-f]{40}$/);
    expect(event.data).toEqual({
      outcome: 'succeeded',
      event: { source: SOURCE, id: body.id, type: body.type, time: body.time },
      ticket: 'HR-42',
      user: {
        given: 'alice@contoso.com',
        objectId: core.users.alice.id,
        userPrincipalName: 'alice@contoso.com',
      },
      dryRun: false,
      actions: record.actions.map((a) => ({ action: a.action, status: 'succeeded' })),
      verification: {
        verified: true,
        signInSessionsValidFrom: record.verification?.signInSessionsValidFrom,
      },
      accessCutoff: record.accessCutoff,
      recordedAt: record.lastAttemptAt,
    });
    expect(event.data.actions.map((a) => a.action).sort()).toEqual([
      'disableAccount',
      'resetPassword',
      'revokeSignInSessions',
    ]);
    // accessCutoff is taken from the record (shared/core/accessCutoff.ts words it), not re-worded.
    expect(event.data.accessCutoff?.caeAppsBy).toBeDefined();
    expect(JSON.stringify(event)).not.toContain(KNOWN_PASSWORD);
  });

  it('has the same id however often it is built, and a new id when what it announces changes', async () => {
    const core = makeCore();
    const { record } = await core.process(delivery(leaving('bob@contoso.com')));
    const first = eventOf(record);
    // A duplicate delivery counts on the record; the announcement is the same.
    const again = eventOf({ ...record, duplicates: 3, lastDuplicateAt: '2026-12-01T00:00:00Z' });
    expect(again.id).toBe(first.id);

    const failed = { ...record, outcome: 'failed' as const, retryable: false };
    const failedA = eventOf({ ...failed, errorCode: ErrorCodes.Forbidden });
    const failedB = eventOf({ ...failed, errorCode: ErrorCodes.UserNotFound });
    const ids = new Set([first.id, failedA.id, failedB.id]);
    expect(ids.size).toBe(3);
    // Another record (another event, or the same id reused for other content) is another id.
    expect(eventOf({ ...record, contentDigest: 'other' }).id).not.toBe(first.id);
    expect(eventOf({ ...record, identityKey: 'other' }).id).not.toBe(first.id);
  });
});

describe('each final outcome', () => {
  it('failed permanently: the error code and a short message, every requested action with its status', async () => {
    const core = makeCore();
    const { record } = await core.process(
      delivery(leaving('dave.synced@contoso.com', { disableAccount: true })),
    );
    expect(record).toMatchObject({ outcome: 'failed', retryable: false });
    const event = eventOf(record);
    expect(event.type).toBe('offboarding.outcome.failed');
    expect(event.data.error).toEqual({
      code: ErrorCodes.OnPremisesMastered,
      message: record.errorMessage,
    });
    expect(event.data.actions).toContainEqual({
      action: 'disableAccount',
      status: 'failed',
      errorCode: ErrorCodes.OnPremisesMastered,
    });
    expect(event.data.actions).toContainEqual({
      action: 'revokeSignInSessions',
      status: 'succeeded',
    });
  });

  it('refused: a protected account, nothing attempted', async () => {
    const core = makeCore();
    const { record } = await core.process(delivery(leaving(PROTECTED_UPN)));
    const event = eventOf(record);
    expect(event.outcome).toBe('refused');
    expect(event.data.error?.code).toBe(ErrorCodes.ProtectedAccount);
    expect(event.data.actions.every((a) => a.status === 'not-attempted')).toBe(true);
    expect(event.data.accessCutoff).toBeUndefined();
  });

  it('dry-run: the actions that would run', async () => {
    const core = makeCore({ dryRun: true });
    const { record } = await core.process(
      delivery(mfaEnabled('bob@contoso.com'), { route: 'mfaEnabled' }),
    );
    const event = eventOf(record);
    expect(event.outcome).toBe('dry-run');
    expect(event.data.dryRun).toBe(true);
    expect(event.data.actions).toEqual([{ action: 'revokeSignInSessions', status: 'would-run' }]);
    expect(outcomeProperties(event)).toEqual({
      outcome: 'dry-run',
      eventType: 'com.contoso.mfa.enabled',
      dryRun: true,
    });
  });

  it('cancelled: the departure a cancellation stopped before its leave date', async () => {
    const core = makeCore();
    const effectiveAt = new Date(core.clock.now().getTime() + 86_400_000).toISOString();
    const departure = leaving('bob@contoso.com', { effectiveAt });
    const scheduled = await core.process(delivery(departure));
    expect(scheduled.record.outcome).toBe('scheduled');
    expect(toOutcomeEvent(scheduled.record)).toBeUndefined();

    const cancellation = await core.process(delivery(leavingCancelled('bob@contoso.com')));
    expect(cancellation.record.outcome).toBe('succeeded');
    const stored = await core.audit.read(scheduled.record);
    const event = eventOf(stored?.record ?? scheduled.record);
    expect(event.outcome).toBe('cancelled');
    expect(event.data.event.id).toBe(departure.id);
    // The cancellation itself succeeded: announced under its own type.
    expect(eventOf(cancellation.record)).toMatchObject({
      outcome: 'succeeded',
      data: { event: { type: 'com.contoso.hr.employee.leaving.cancelled' } },
    });
  });

  it('an invalid message: failed with InvalidEvent, marked invalidMessage, with what could be read', async () => {
    const core = makeCore();
    const { record } = await core.process(
      delivery({ specversion: '1.0', id: 'evt-bad', type: 'employee.leaving', data: {} }),
    );
    const event = eventOf(record);
    expect(event.outcome).toBe('failed');
    expect(event.data.invalidMessage).toBe(true);
    expect(event.data.error?.code).toBe(ErrorCodes.InvalidEvent);
    expect(event.data.event).toEqual({ id: 'evt-bad' });
    expect(event.subject).toBeUndefined();
    expect(outcomeProperties(event)).toMatchObject({ eventType: '', errorCode: 'InvalidEvent' });
  });

  it('a reinstatement that succeeded is announced as reinstated; one that failed stays failed', () => {
    const reinstated = finalRecord({ eventType: 'com.contoso.hr.employee.reinstated' });
    expect(eventOf(reinstated)).toMatchObject({
      type: 'offboarding.outcome.reinstated',
      outcome: 'reinstated',
    });
    const refused = finalRecord({
      eventType: 'employee.reinstated',
      outcome: 'failed',
      retryable: false,
      errorCode: ErrorCodes.NotDisabledByThisApp,
    });
    expect(eventOf(refused).outcome).toBe('failed');
  });

  it('held: which guardrail held it, without its limit or count; discarded as such', () => {
    const held = finalRecord({
      outcome: 'held',
      guardrail: {
        heldAt: '2026-11-30T09:00:00Z',
        heldReason: '51 departures in 60 min (limit 50)',
        heldEvent: '{"data":{"user":"x@contoso.com"}}',
      },
    });
    const event = eventOf(held);
    expect(event.outcome).toBe('held');
    // Which guardrail, not its limit or count (a sender could stay just under them).
    expect(event.data.heldReason).toMatch(/guardrail for .* is tripped/);
    expect(event.data.heldReason).not.toMatch(/\d/);
    // The held event's body stays in the audit: the announcement carries the reason only.
    expect(JSON.stringify(event)).not.toContain('heldEvent');
    expect(eventOf(finalRecord({ outcome: 'discarded' })).outcome).toBe('discarded');
  });

  it('a superseded event names the intent that superseded it; a delayed departure says since when', () => {
    const superseded = eventOf(
      finalRecord({
        outcome: 'superseded',
        supersededBy: {
          eventId: 'cancel-1',
          source: SOURCE,
          kind: 'cancel',
          at: '2026-11-30T08:59:00.000Z',
        },
      }),
    );
    expect(superseded.type).toBe('offboarding.outcome.superseded');
    expect(superseded.data.supersededBy).toEqual({
      source: SOURCE,
      id: 'cancel-1',
      kind: 'cancel',
      time: '2026-11-30T08:59:00.000Z',
    });
    const delayed = eventOf(
      finalRecord({
        outcome: 'delayed',
        retryable: true,
        errorCode: 'Throttled',
        delayedAt: '2026-11-30T09:15:00.000Z',
      }),
    );
    expect(delayed.outcome).toBe('delayed');
    expect(delayed.data.delayedSince).toBe('2026-11-30T09:15:00.000Z');
    expect(delayed.data.error?.code).toBe('Throttled');
    // Published once per cause: the same delayed record gives the same id (duplicate detection).
    expect(delayed.id).toBe(
      eventOf(finalRecord({ outcome: 'delayed', retryable: true, errorCode: 'Throttled' })).id,
    );
  });

  it('records that are not final announce nothing', () => {
    for (const outcome of ['in-progress', 'scheduled'] as const)
      expect(toOutcomeEvent(finalRecord({ outcome }))).toBeUndefined();
    const transient = finalRecord({ outcome: 'failed', retryable: true, errorCode: 'Throttled' });
    expect(toOutcomeEvent(transient)).toBeUndefined();
    expect(announcedOutcome(transient)).toBeUndefined();
  });

  it('covers every announced outcome (no outcome without a test above)', () => {
    const seen = [
      eventOf(finalRecord({})).outcome,
      eventOf(finalRecord({ outcome: 'failed', retryable: false })).outcome,
      eventOf(finalRecord({ outcome: 'refused' })).outcome,
      eventOf(finalRecord({ outcome: 'cancelled' })).outcome,
      eventOf(finalRecord({ outcome: 'held' })).outcome,
      eventOf(finalRecord({ outcome: 'discarded' })).outcome,
      eventOf(finalRecord({ eventType: 'employee.reinstated' })).outcome,
      eventOf(finalRecord({ outcome: 'dry-run' })).outcome,
      eventOf(finalRecord({ outcome: 'superseded' })).outcome,
      eventOf(finalRecord({ outcome: 'delayed' })).outcome,
      // Not a record's outcome: the sign-in watch's incident (test/core/signInWatch.test.ts).
      toWatchEvent({
        ...finalRecord({}),
        signInWatch: {
          from: '2026-11-30T09:00:04Z',
          cutoffAt: '2026-11-30T09:15:04.000Z',
          announcedBy: 0,
          checks: [
            {
              dueAt: '2026-11-30T10:15:04.000Z',
              result: { verdict: 'signin-after-cutoff', checkedAt: '2026-11-30T10:15:05.000Z' },
            },
          ],
        },
      })?.outcome,
    ];
    expect([...seen].sort()).toEqual([...AnnouncedOutcomes].sort());
  });
});

describe('what never leaves the audit', () => {
  it('takes fields by name: notes, request ids, claims, message ids and unknown fields stay out', () => {
    const record = {
      ...finalRecord({
        notes: ['token=eyJ0eXAiOiJKV1QiLCJhbGciOi'],
        graphRequestIds: ['req-1'],
        messageId: 'msg-secret-route',
        reason: 'performance issues',
        actions: [
          {
            action: 'resetPassword',
            status: 'failed',
            errorCode: 'Forbidden',
            message: `password ${KNOWN_PASSWORD} rejected`,
            requestId: 'req-2',
          },
        ],
      }),
      // A field someone might add to the record one day: the event must not pick it up by itself.
      generatedPassword: KNOWN_PASSWORD,
      accessToken: 'eyJ0eXAiOiJKV1QiLCJhbGciOi',
    } as AuditRecord;
    const text = JSON.stringify(eventOf(record));
    for (const secret of [
      KNOWN_PASSWORD,
      'eyJ0eXAi',
      'req-1',
      'req-2',
      'msg-secret-route',
      'performance issues',
      'generatedPassword',
      'accessToken',
    ])
      expect(text).not.toContain(secret);
    expect(eventOf(record).data.actions).toEqual([
      { action: 'resetPassword', status: 'failed', errorCode: 'Forbidden' },
    ]);
  });

  it('cuts a long error message (the audit keeps all of it)', () => {
    const long = 'x'.repeat(OUTCOME_MESSAGE_MAX_CHARS * 3);
    const event = eventOf(
      finalRecord({
        outcome: 'failed',
        retryable: false,
        errorCode: 'Unexpected',
        errorMessage: long,
      }),
    );
    expect(event.data.error?.message).toHaveLength(OUTCOME_MESSAGE_MAX_CHARS);
  });

  it('context attributes follow CloudEvents: lower-case names, scalar extension values', () => {
    const event = eventOf(finalRecord({}));
    for (const [name, value] of Object.entries(event)) {
      expect(name).toMatch(/^[a-z0-9]{1,20}$/);
      if (name !== 'data') expect(typeof value).toBe('string');
    }
  });
});
