/**
 * Final records reach the sinks (the immutable audit log, then the outcome topic) at least once:
 * every final outcome once per delivery, after its audit write; nothing that is not final; a sink
 * that fails leaves the record as written and makes the delivery come back to give it again.
 */
import { ErrorCodes, OffboardingError } from '../../shared/core/errors';
import type { AuditRecord, FinalRecordSink, Outcome } from '../../shared/core/ports';
import { graphErrors } from '../support/fakes';
import {
  PROTECTED_UPN,
  RETRY,
  delivery,
  leaving,
  mfaEnabled,
  leavingCancelled,
  makeCore,
  message,
  type Core,
  type CoreOptions,
} from './harness';

const DAY = 86_400_000;

/**
 * A sink that keeps what it was given, can be told to fail, and writes every call to a log
 * shared with the other sinks (to see their order).
 */
class RecordingSink implements FinalRecordSink {
  readonly accepted: AuditRecord[] = [];
  /** Calls to fail from now on. */
  failing = 0;
  /** Checks each record as it arrives (for example, that it is already in the audit). */
  check: (record: AuditRecord) => void = () => undefined;

  constructor(
    readonly name: string,
    private readonly calls: string[],
  ) {}

  accept(record: AuditRecord): Promise<void> {
    this.calls.push(`${this.name} ${record.eventId} ${record.outcome}`);
    this.check(record);
    if (this.failing > 0) {
      this.failing -= 1;
      return Promise.reject(
        new OffboardingError(ErrorCodes.MessagingUnavailable, `${this.name}: injected outage`, {
          retryable: true,
        }),
      );
    }
    this.accepted.push(structuredClone(record));
    return Promise.resolve();
  }

  /** What it accepted, as "eventId outcome". */
  seen(): string[] {
    return this.accepted.map((r) => `${r.eventId} ${r.outcome}`);
  }
}

interface SinkCore extends Core {
  log: RecordingSink;
  topic: RecordingSink;
  /** Every sink call in order: "sink eventId outcome". */
  calls: string[];
}

function makeSinkCore(options: CoreOptions = {}): SinkCore {
  const calls: string[] = [];
  const log = new RecordingSink('immutable audit log', calls);
  const topic = new RecordingSink('outcome topic', calls);
  const core = makeCore({ ...options, finalSinks: [log, topic] });
  // A sink hears of a record only once it is the audit's truth.
  const written = (record: AuditRecord) => {
    const stored = core.audit
      .all()
      .find(
        (r) => r.identityKey === record.identityKey && r.contentDigest === record.contentDigest,
      );
    expect(stored).toEqual(record);
  };
  log.check = written;
  topic.check = written;
  return { ...core, log, topic, calls };
}

/** A departure of alice two days ahead, scheduled (not final). */
async function scheduledDeparture(core: SinkCore) {
  const body = leaving('alice@contoso.com', { effectiveAt: core.clock.iso(2 * DAY) }, { id: 'd1' });
  const outcome = await core.handle('employeeLeaving', message(body));
  expect(outcome.result.record.outcome).toBe('scheduled');
  return body;
}

describe('every final outcome reaches the sinks once per delivery, in order', () => {
  const cases: Array<{
    outcome: Outcome | 'failed permanently' | 'retries exhausted' | 'invalid message';
    options?: CoreOptions;
    run: (core: SinkCore) => Promise<unknown>;
    expected: string;
  }> = [
    {
      outcome: 'succeeded',
      run: (core) => core.process(delivery(leaving('alice@contoso.com', {}, { id: 'e1' }))),
      expected: 'e1 succeeded',
    },
    {
      outcome: 'refused',
      run: (core) => core.process(delivery(leaving(PROTECTED_UPN, {}, { id: 'e1' }))),
      expected: 'e1 refused',
    },
    {
      outcome: 'failed permanently',
      run: (core) => core.process(delivery(leaving('nobody@contoso.com', {}, { id: 'e1' }))),
      expected: 'e1 failed',
    },
    {
      outcome: 'retries exhausted',
      options: { retry: { ...RETRY, maxAttempts: 1 } },
      run: (core) => {
        // An MFA event keeps an attempt limit (a departure gives up only on its time limit).
        core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
        return core.handle('mfaEnabled', message(mfaEnabled('alice@contoso.com', { id: 'e1' })));
      },
      expected: 'e1 failed',
    },
    {
      outcome: 'dry-run',
      options: { dryRun: true },
      run: (core) => core.process(delivery(leaving('alice@contoso.com', {}, { id: 'e1' }))),
      expected: 'e1 dry-run',
    },
    {
      outcome: 'invalid message',
      run: (core) =>
        core.handle('employeeLeaving', message({ specversion: '1.0', id: 'e1', data: {} })),
      expected: 'e1 failed',
    },
  ];

  it.each(cases)('$outcome', async ({ options, run, expected }) => {
    const core = makeSinkCore(options);
    await run(core);
    expect(core.log.seen()).toEqual([expected]);
    expect(core.topic.seen()).toEqual([expected]);
    expect(core.calls).toEqual([`immutable audit log ${expected}`, `outcome topic ${expected}`]);
  });

  it('held (the blast-radius guardrail)', async () => {
    const core = makeSinkCore({
      guardrail: { employeeLeaving: { maxPerWindow: 1, windowMinutes: 60 } },
    });
    await core.process(delivery(leaving('alice@contoso.com', {}, { id: 'ran' })));
    const held = await core.process(delivery(leaving('bob@contoso.com', {}, { id: 'held' })));
    expect(held.record.outcome).toBe('held');
    expect(core.log.seen()).toEqual(['ran succeeded', 'held held']);
    expect(core.topic.seen()).toEqual(['ran succeeded', 'held held']);
  });

  it('a cancelled departure, then the cancellation itself', async () => {
    const core = makeSinkCore();
    await scheduledDeparture(core);
    await core.process(delivery(leavingCancelled('alice@contoso.com', { id: 'c1' })));
    expect(core.audit.only('d1').outcome).toBe('cancelled');
    expect(core.log.seen()).toEqual(['d1 cancelled', 'c1 succeeded']);
    expect(core.topic.seen()).toEqual(['d1 cancelled', 'c1 succeeded']);
    expect(core.calls).toEqual([
      'immutable audit log d1 cancelled',
      'outcome topic d1 cancelled',
      'immutable audit log c1 succeeded',
      'outcome topic c1 succeeded',
    ]);
  });

  it('each later delivery gives a final record again: a duplicate, a permanent failure redelivered', async () => {
    const core = makeSinkCore();
    const body = leaving('alice@contoso.com', {}, { id: 'done' });
    await core.process(delivery(body));
    await core.process(delivery(body));
    const refused = leaving(PROTECTED_UPN, {}, { id: 'refused' });
    await core.process(delivery(refused, { messageId: 'm-refused' }));
    const again = await core.process(delivery(refused, { messageId: 'm-refused' }));
    expect(again.disposition).toBe('reject');

    expect(core.log.seen()).toEqual([
      'done succeeded',
      'done succeeded',
      'refused refused',
      'refused refused',
    ]);
    expect(core.topic.seen()).toEqual(core.log.seen());
    // Given again, never done again.
    expect(core.directory.writes()).toHaveLength(2);
  });

  it('discarded: given when the decision is applied, and again whenever it is sent again', async () => {
    const core = makeSinkCore({
      guardrail: { employeeLeaving: { maxPerWindow: 1, windowMinutes: 60 } },
    });
    await core.process(delivery(leaving('alice@contoso.com', {}, { id: 'ran' })));
    const body = leaving('bob@contoso.com', {}, { id: 'held' });
    await core.process(delivery(body));
    await core.guardrailStore.decide('employeeLeaving', core.audit.only('held'), {
      kind: 'discard',
      approvalId: 'a1',
      by: 'ops@contoso.com',
      reason: 'the feed was wrong',
      at: core.clock.iso(),
    });
    await core.process(delivery(body));
    await core.process(delivery(body));
    expect(core.log.seen()).toEqual([
      'ran succeeded',
      'held held',
      'held discarded',
      'held discarded',
    ]);
    expect(core.topic.seen()).toEqual(core.log.seen());
  });
});

describe('what is not final does not reach the sinks', () => {
  it('a departure scheduled for its leave date', async () => {
    const core = makeSinkCore();
    await scheduledDeparture(core);
    expect(core.calls).toEqual([]);
  });

  it('a transient failure with its retry parked; the retry that succeeds is given once', async () => {
    const core = makeSinkCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
    const first = await core.handle(
      'employeeLeaving',
      message(leaving('alice@contoso.com', {}, { id: 'e1' })),
    );
    expect(first.result.record).toMatchObject({ outcome: 'failed', retryable: true });
    expect(first.result.retry).toBeDefined();
    expect(core.calls).toEqual([]);

    core.clock.set(first.result.retry?.at ?? '');
    await core.handle('employeeLeaving', core.scheduler.take(core.scheduler.last()));
    expect(core.log.seen()).toEqual(['e1 succeeded']);
  });

  it('a transient failure of a run by hand (reported as retry)', async () => {
    const core = makeSinkCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
    const result = await core.process(
      delivery(leaving('alice@contoso.com', {}, { id: 'e1' }), { route: 'command' }),
    );
    expect(result.disposition).toBe('retry');
    expect(core.calls).toEqual([]);
  });

  it('a deferral by the pacer', async () => {
    const core = makeSinkCore();
    core.pacer.deferNext(5);
    const first = await core.handle(
      'employeeLeaving',
      message(leaving('alice@contoso.com', {}, { id: 'e1' })),
    );
    expect(first.result.error?.code).toBe(ErrorCodes.Deferred);
    expect(core.calls).toEqual([]);
  });

  it('a cancellation that finds nothing to cancel gives only its own record', async () => {
    const core = makeSinkCore();
    await core.process(delivery(leavingCancelled('alice@contoso.com', { id: 'c1' })));
    expect(core.log.seen()).toEqual(['c1 succeeded']);
  });
});

describe('a sink that fails', () => {
  it('a copy is parked for later (no attempt used), the record stays as written, the copy gives it again', async () => {
    const core = makeSinkCore();
    core.log.failing = 1;
    const body = leaving('alice@contoso.com', {}, { id: 'e1' });
    const first = await core.handle('employeeLeaving', message(body, { messageId: 'm1' }));

    expect(first.result.disposition).toBe('done');
    expect(first.result.error).toMatchObject({
      code: ErrorCodes.FinalRecordUndelivered,
      retryable: true,
    });
    expect(first.result.error?.message).toMatch(/immutable audit log did not take it/);
    // However long the sink is down, the message is not redelivered at once until it dead-letters.
    expect(first.settlement).toBe('complete');
    expect(core.scheduler.scheduled).toHaveLength(1);
    const parked = core.scheduler.last();
    expect(parked.message.messageId).toMatch(/^wait-/);
    // The retry policy's second delay (RETRY in the harness: 10 s base, so 10-20 s).
    const waitMs = Date.parse(parked.at.toISOString()) - Date.parse(core.clock.iso());
    expect(waitMs).toBeGreaterThanOrEqual(10_000);
    expect(waitMs).toBeLessThanOrEqual(20_000);
    // The record is the truth and stays as written; the sink after the failing one was not told.
    const stored = core.audit.only('e1');
    expect(stored.outcome).toBe('succeeded');
    expect(stored.errorCode).toBeUndefined();
    expect(stored.attempts).toBe(1);
    expect(first.result.record).toEqual(stored);
    expect(core.topic.accepted).toEqual([]);
    const writes = core.audit.writes.length;

    core.clock.set(first.result.retry?.at ?? '');
    const again = await core.handle('employeeLeaving', core.scheduler.take(parked));
    expect(again.settlement).toBe('complete');
    expect(again.result.duplicate).toBe(true);
    expect(core.log.seen()).toEqual(['e1 succeeded']);
    expect(core.topic.seen()).toEqual(['e1 succeeded']);
    // Nothing redone: the Graph writes of the first delivery only, and only a duplicate counted.
    expect(core.directory.writes()).toHaveLength(2);
    expect(core.audit.writes.length).toBe(writes + 1);
    expect(core.audit.only('e1')).toMatchObject({
      outcome: 'succeeded',
      duplicates: 1,
      attempts: 1,
    });
  });

  it('without a queue to park on (a run by hand) the delivery is retried as it is', async () => {
    const core = makeSinkCore();
    core.log.failing = 1;
    const body = leaving('alice@contoso.com', {}, { id: 'e1' });
    const first = await core.process(delivery(body, { messageId: 'm1', route: 'command' }));
    expect(first.disposition).toBe('retry');
    expect(first.error?.code).toBe(ErrorCodes.FinalRecordUndelivered);
    expect(core.scheduler.scheduled).toEqual([]);
  });

  it('the second sink failing: the first is given the record again on the next delivery (at least once)', async () => {
    const core = makeSinkCore();
    core.topic.failing = 1;
    const body = leaving('alice@contoso.com', {}, { id: 'e1' });
    const first = await core.process(delivery(body, { messageId: 'm1' }));
    expect(first.disposition).toBe('done');
    expect(first.retry).toBeDefined();
    expect(first.error?.message).toMatch(/outcome topic did not take it/);
    await core.process(delivery(body, { messageId: 'm1' }));
    expect(core.log.seen()).toEqual(['e1 succeeded', 'e1 succeeded']);
    expect(core.topic.seen()).toEqual(['e1 succeeded']);
  });

  it('a permanent failure waits for its record to be delivered before it goes towards the dead-letter queue', async () => {
    const core = makeSinkCore();
    core.log.failing = 1;
    const body = leaving(PROTECTED_UPN, {}, { id: 'refused' });
    const first = await core.process(delivery(body, { messageId: 'm1' }));
    expect(first.disposition).toBe('retry');
    expect(core.audit.only('refused').outcome).toBe('refused');
    const again = await core.process(delivery(body, { messageId: 'm1' }));
    expect(again.disposition).toBe('reject');
    expect(again.error?.code).toBe(ErrorCodes.ProtectedAccount);
    expect(core.log.seen()).toEqual(['refused refused']);
    expect(core.topic.seen()).toEqual(['refused refused']);
  });

  it('a held event: a copy parked, still held, given on the next delivery', async () => {
    const core = makeSinkCore({
      guardrail: { employeeLeaving: { maxPerWindow: 1, windowMinutes: 60 } },
    });
    await core.process(delivery(leaving('alice@contoso.com', {}, { id: 'ran' })));
    core.log.failing = 1;
    const body = leaving('bob@contoso.com', {}, { id: 'held' });
    const first = await core.process(delivery(body, { messageId: 'm-held' }));
    expect(first.disposition).toBe('done');
    expect(first.retry).toBeDefined();
    expect(first.record.outcome).toBe('held');
    await core.process(delivery(body, { messageId: 'm-held' }));
    expect(core.log.seen()).toEqual(['ran succeeded', 'held held']);
    expect(core.directory.writes().filter((w) => w.target === core.users.bob.id)).toEqual([]);
  });

  it('a cancelled departure: the cancellation is retried and gives it on its next attempt', async () => {
    const core = makeSinkCore();
    await scheduledDeparture(core);
    core.log.failing = 1;
    const first = await core.handle(
      'employeeLeaving',
      message(leavingCancelled('alice@contoso.com', { id: 'c1' })),
    );
    expect(first.result.error?.code).toBe(ErrorCodes.FinalRecordUndelivered);
    expect(first.result.record).toMatchObject({ outcome: 'failed', retryable: true });
    expect(core.audit.only('d1').outcome).toBe('cancelled');
    expect(core.log.accepted).toEqual([]);

    core.clock.set(first.result.retry?.at ?? '');
    const retried = await core.handle(
      'employeeLeaving',
      core.scheduler.take(core.scheduler.last()),
    );
    expect(retried.result.record.outcome).toBe('succeeded');
    expect(core.log.seen()).toEqual(['d1 cancelled', 'c1 succeeded']);
    expect(core.topic.seen()).toEqual(['d1 cancelled', 'c1 succeeded']);
  });

  it('an invalid message: not dead-lettered until its record was delivered', async () => {
    const core = makeSinkCore();
    core.log.failing = 1;
    const body = { specversion: '1.0', id: 'bad', data: {} };
    const first = await core.handle('employeeLeaving', message(body, { messageId: 'm-bad' }));
    expect(first.settlement).toBe('abandon');
    expect(first.result.disposition).toBe('retry');
    const again = await core.handle('employeeLeaving', message(body, { messageId: 'm-bad' }));
    expect(again.result.disposition).toBe('reject');
    expect(core.log.seen()).toEqual(['bad failed']);
    expect(core.topic.seen()).toEqual(['bad failed']);
  });
});
