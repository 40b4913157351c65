/**
 * The sign-in watch's decisions, through the in-memory ports: the rule (judgeSignIns), the
 * message (forged, duplicate, early), the plan a succeeded departure gets, and one check's run
 * (incident once, no sign-in, failed attempts only, no licence, 429, paging, a reinstatement).
 */
import { ErrorCodes, OffboardingError } from '../../shared/core/errors';
import type { AuditRecord, SignInLog, SignInPage } from '../../shared/core/ports';
import type { OutcomeEvent } from '../../shared/core/outcomeEvent';
import {
  MAX_CHECK_ATTEMPTS,
  judgeSignIns,
  parseWatchMessage,
  watchMessage,
  windowEnd,
  type SignInEntry,
  type WatchMessage,
} from '../../shared/core/signInWatch';
import { runWatchCheck, type WatchDeps } from '../../shared/core/signInWatchRun';
import { emptyTimeline } from '../../shared/core/timeline';
import { describeVerdict, replayVerdictOf } from '../../shared/core/replayVerdict';
import { latestRecordFor } from '../../shared/core/auditRecords';
import { delivery, leaving, makeCore, mfaEnabled, reinstatedEvent, type Core } from './harness';

const MIN = 60_000;
const SETTINGS = { enabled: true, afterMinutes: [60, 1440] };

let n = 0;
function signIn(at: string, errorCode = 0, extra: Partial<SignInEntry> = {}): SignInEntry {
  n += 1;
  return {
    id: `si-${n}`,
    createdDateTime: at,
    errorCode,
    appDisplayName: 'Salesforce',
    ipAddress: '203.0.113.7',
    clientAppUsed: 'Browser',
    isInteractive: true,
    ...extra,
  };
}

describe('judgeSignIns (the rule)', () => {
  const window = {
    from: '2026-11-30T09:00:00.000Z',
    to: '2026-11-30T11:00:00.000Z',
    cutoffAt: '2026-11-30T09:15:00.000Z',
  };
  const at = new Date('2026-11-30T11:00:00Z');

  it('a successful sign-in after the cut-off is an incident, with app, time, IP, client and CAE', () => {
    const finding = judgeSignIns(
      [signIn('2026-11-30T10:00:00.000Z', 0, { caeToken: false })],
      window,
      at,
    );
    expect(finding).toMatchObject({
      verdict: 'signin-after-cutoff',
      successesAfterCutoff: 1,
      failedAttempts: 0,
      signIns: [
        {
          at: '2026-11-30T10:00:00.000Z',
          app: 'Salesforce',
          ipAddress: '203.0.113.7',
          clientAppUsed: 'Browser',
          interactive: true,
          caeToken: false,
        },
      ],
    });
  });

  it('a sign-in exactly at the cut-off is not an incident (access ends *by* the cut-off)', () => {
    const finding = judgeSignIns([signIn(window.cutoffAt)], window, at);
    expect(finding).toMatchObject({ verdict: 'no-sign-in', successesBeforeCutoff: 1 });
    const oneMsLater = judgeSignIns([signIn('2026-11-30T09:15:00.001Z')], window, at);
    expect(oneMsLater.verdict).toBe('signin-after-cutoff');
  });

  it('failed attempts are counted, never alarmed', () => {
    const finding = judgeSignIns(
      [signIn('2026-11-30T10:00:00Z', 50126), signIn('2026-11-30T10:01:00Z', 50057)],
      window,
      at,
    );
    expect(finding).toMatchObject({ verdict: 'failed-attempts-only', failedAttempts: 2 });
    expect(finding.signIns).toBeUndefined();
  });

  it('nothing at all is "no sign-in"; entries outside the window or repeated are not judged', () => {
    expect(judgeSignIns([], window, at).verdict).toBe('no-sign-in');
    const outside = judgeSignIns(
      [signIn('2026-11-30T08:59:59Z'), signIn('2026-11-30T11:00:01Z')],
      window,
      at,
    );
    expect(outside).toMatchObject({ verdict: 'no-sign-in', successesBeforeCutoff: 0 });
    const entry = signIn('2026-11-30T10:00:00Z');
    expect(judgeSignIns([entry, entry], window, at).successesAfterCutoff).toBe(1);
  });
});

describe('the watch message', () => {
  const key = { identityKey: 'a'.repeat(40), contentDigest: 'b'.repeat(40) };

  it('round-trips, as an object or as UTF-8 bytes, with a deterministic id', () => {
    const from = '2026-11-30T09:00:04Z';
    const m = watchMessage(key, 1, from);
    expect(parseWatchMessage(m.body)).toEqual({ key, check: 1 });
    expect(parseWatchMessage(Buffer.from(JSON.stringify(m.body)))).toEqual({ key, check: 1 });
    expect(watchMessage(key, 1, from).messageId).toBe(m.messageId);
    // A retry, or a new watch of the same record (revoked again), is a message of its own.
    expect(watchMessage(key, 1, from, 1).messageId).not.toBe(m.messageId);
    expect(watchMessage(key, 1, '2026-12-01T09:00:04Z').messageId).not.toBe(m.messageId);
    expect(m.messageId.startsWith('watch-')).toBe(true);
  });

  it('is never an HR event, and a malformed one names no record', () => {
    expect(parseWatchMessage(leaving('alice@contoso.com'))).toBeUndefined();
    const body = watchMessage(key, 0, '2026-11-30T09:00:04Z').body as Record<string, unknown>;
    expect(parseWatchMessage({ ...body, identityKey: '../x' })).toBeUndefined();
    expect(parseWatchMessage({ ...body, check: -1 })).toBeUndefined();
    expect(parseWatchMessage({ ...body, check: 1.5 })).toBeUndefined();
    expect(parseWatchMessage('not json offboarding.signin-watch')).toBeUndefined();
  });
});

describe('windowEnd (a chapter of the person’s story)', () => {
  const now = new Date('2026-12-01T09:00:00Z');
  const intent = (ref: string, kind: 'leave' | 'cancel' | 'reinstate', at: string) => ({
    ref,
    eventId: ref,
    source: '/hr',
    kind,
    at,
  });

  it('ends at a reinstatement that came after the departure', () => {
    const timeline = {
      ...emptyTimeline('p'),
      intents: [
        intent('dep', 'leave', '2026-11-30T09:00:00Z'),
        intent('back', 'reinstate', '2026-11-30T12:00:00Z'),
      ],
    };
    const end = windowEnd(timeline, 'dep', now);
    expect(end.to).toBe('2026-11-30T12:00:00Z');
    expect(end.note).toContain('reinstated');
  });

  it('a newer departure or a late cancellation does not end it (the person is still gone)', () => {
    const timeline = {
      ...emptyTimeline('p'),
      intents: [
        intent('dep', 'leave', '2026-11-30T09:00:00Z'),
        intent('cancel', 'cancel', '2026-11-30T10:00:00Z'),
        intent('dep2', 'leave', '2026-11-30T20:00:00Z'),
      ],
    };
    expect(windowEnd(timeline, 'dep', now)).toEqual({ to: now.toISOString() });
    const reinstatedLater = {
      ...timeline,
      intents: [...timeline.intents, intent('back', 'reinstate', '2026-11-30T22:00:00Z')],
    };
    expect(windowEnd(reinstatedLater, 'dep', now).to).toBe('2026-11-30T22:00:00Z');
  });

  it('runs to now when nothing came after the departure', () => {
    const timeline = {
      ...emptyTimeline('p'),
      intents: [
        intent('old', 'reinstate', '2026-11-29T09:00:00Z'),
        intent('dep', 'leave', '2026-11-30T09:00:00Z'),
      ],
    };
    expect(windowEnd(timeline, 'dep', now)).toEqual({ to: now.toISOString() });
    expect(windowEnd(undefined, 'dep', now)).toEqual({ to: now.toISOString() });
  });
});

/** A sign-in log in memory: Graph's filter on time, pages of `pageSize`, faults to inject. */
class FakeSignInLog implements SignInLog {
  entries: Array<SignInEntry & { userId: string }> = [];
  pageSize = 1000;
  /** Entries Graph would list that the adapter could not read, reported on the first page. */
  unreadable = 0;
  faults: OffboardingError[] = [];
  calls = 0;

  listSignIns(userId: string, from: string, to: string): Promise<SignInPage> {
    const matching = this.entries
      .filter((e) => e.userId === userId && e.createdDateTime >= from && e.createdDateTime <= to)
      .sort((a, b) => b.createdDateTime.localeCompare(a.createdDateTime));
    return this.page(matching, 0);
  }

  nextSignIns(nextLink: string): Promise<SignInPage> {
    const [, payload] = /^fake:(.*)$/.exec(nextLink) ?? [];
    const { list, offset } = JSON.parse(payload ?? '{}') as {
      list: SignInEntry[];
      offset: number;
    };
    return this.page(list, offset);
  }

  private page(list: SignInEntry[], offset: number): Promise<SignInPage> {
    this.calls += 1;
    const fault = this.faults.shift();
    if (fault !== undefined) return Promise.reject(fault);
    const next = offset + this.pageSize;
    return Promise.resolve({
      signIns: list.slice(offset, next).map(({ ...e }) => e),
      ...(offset === 0 && this.unreadable > 0 ? { unreadable: this.unreadable } : {}),
      ...(next < list.length ? { nextLink: `fake:${JSON.stringify({ list, offset: next })}` } : {}),
    });
  }
}

interface WatchWorld {
  core: Core;
  log: FakeSignInLog;
  announced: OutcomeEvent[];
  deps: WatchDeps;
  /** Runs the departure of `user` and returns its record (succeeded, with its watch planned). */
  depart(user: string): Promise<AuditRecord>;
  /** The scheduled watch message of a check, as the trigger would hand it over. */
  checkOf(record: AuditRecord, check: number): WatchMessage;
}

function watchWorld(settings = SETTINGS): WatchWorld {
  const core = makeCore({ signInWatch: settings });
  const log = new FakeSignInLog();
  const announced: OutcomeEvent[] = [];
  const deps: WatchDeps = {
    audit: core.audit,
    timelines: core.timelines,
    signIns: log,
    scheduler: core.scheduler,
    queue: 'employee-leaving',
    settings,
    announce: (event) => {
      announced.push(event);
      return Promise.resolve();
    },
    now: core.clock.now,
  };
  return {
    core,
    log,
    announced,
    deps,
    depart: async (user) => {
      const result = await core.process(delivery(leaving(user)));
      expect(result.record.outcome).toBe('succeeded');
      return result.record;
    },
    checkOf: (record, check) => {
      const entry = core.scheduler
        .pending()
        .find(
          (s) =>
            s.message.messageId ===
              watchMessage(record, check, record.signInWatch?.from ?? '').messageId && !s.delivered,
        );
      if (entry === undefined) throw new Error(`check ${check} is not scheduled`);
      const parsed = parseWatchMessage(core.scheduler.take(entry).body);
      if (parsed === undefined) throw new Error('not a watch message');
      return parsed;
    },
  };
}

describe('planning the watch of a departure', () => {
  it('schedules one check per setting after the cut-off, on the departures queue', async () => {
    const w = watchWorld();
    const record = await w.depart('alice@contoso.com');
    const watch = record.signInWatch;
    expect(watch?.cutoffAt).toBe(record.accessCutoff?.caeAppsBy);
    expect(watch?.from).toBe(record.verification?.signInSessionsValidFrom);
    const cutoff = Date.parse(watch?.cutoffAt ?? '');
    expect(watch?.checks.map((c) => Date.parse(c.dueAt) - cutoff)).toEqual([60 * MIN, 1440 * MIN]);
    const scheduled = w.core.scheduler
      .pending()
      .filter((s) => s.message.messageId.startsWith('watch-'));
    expect(scheduled.map((s) => [s.queue, s.at.toISOString()])).toEqual(
      watch?.checks.map((c) => ['employee-leaving', c.dueAt]),
    );
    expect(watch?.checks.map((c) => c.sequenceNumber)).toEqual(
      scheduled.map((s) => s.sequenceNumber),
    );
  });

  it('off (the default): nothing is scheduled and the record has no watch', async () => {
    const core = makeCore();
    const result = await core.process(delivery(leaving('alice@contoso.com')));
    expect(result.record.signInWatch).toBeUndefined();
    expect(
      core.scheduler.scheduled.filter((s) => s.message.messageId.startsWith('watch-')),
    ).toEqual([]);
  });

  it('an MFA event, a dry run and a guest left enabled get no watch', async () => {
    const dry = makeCore({ signInWatch: SETTINGS, dryRun: true });
    expect(
      (await dry.process(delivery(leaving('alice@contoso.com')))).record.signInWatch,
    ).toBeUndefined();
    const w = watchWorld();
    const mfa = await w.core.process(
      delivery(mfaEnabled('bob@contoso.com'), { route: 'mfaEnabled' }),
    );
    expect(mfa.record.outcome).toBe('succeeded');
    expect(mfa.record.signInWatch).toBeUndefined();
    const guest = await w.core.process(
      delivery(
        leaving('carol_fabrikam.com#EXT#@contoso.onmicrosoft.com', { disableAccount: false }),
      ),
    );
    expect(guest.record.outcome).toBe('succeeded');
    expect(guest.record.signInWatch).toBeUndefined();
    expect(guest.record.notes.join(' ')).toContain('Sign-in watch: not scheduled');
  });

  it('a synced account whose disable failed (revoked, failed for good) is watched from the CAE window', async () => {
    const w = watchWorld();
    const result = await w.core.process(delivery(leaving('dave.synced@contoso.com')));
    expect(result.record).toMatchObject({ outcome: 'failed', retryable: false });
    const watch = result.record.signInWatch;
    const revokedAt = Date.parse(result.record.verification?.signInSessionsValidFrom ?? '');
    expect(Date.parse(watch?.cutoffAt ?? '') - revokedAt).toBe(15 * MIN);
    expect(watch?.checks).toHaveLength(2);
  });

  it('a failed departure replayed (offboard dlq replay) keeps its watch and what its checks found', async () => {
    const w = watchWorld();
    const event = leaving('dave.synced@contoso.com');
    const first = await w.core.process(delivery(event));
    const cutoff = Date.parse(first.record.signInWatch?.cutoffAt ?? '');
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    await runWatchCheck(w.deps, w.checkOf(first.record, 0));
    const scheduledBefore = w.core.scheduler.scheduled.length;
    // Replayed later (a new message id): it runs again, and fails again for the same reason.
    w.core.clock.advance(MIN);
    const replay = await w.core.process(delivery(event, { messageId: 'replay-1' }));
    expect(replay.record.outcome).toBe('failed');
    expect(replay.record.attempts).toBe(2);
    expect(replay.record.signInWatch).toEqual(
      (await latestRecordFor(w.core.audit, event.id))?.signInWatch,
    );
    expect(replay.record.signInWatch?.checks[0]?.result?.verdict).toBe('no-sign-in');
    expect(replay.record.signInWatch?.from).toBe(first.record.signInWatch?.from);
    expect(w.core.scheduler.scheduled.length).toBe(scheduledBefore);
  });

  it('a transient failure gets no watch until the departure ends', async () => {
    const w = watchWorld();
    w.core.directory.failNext(
      'disableAccount',
      () => new OffboardingError(ErrorCodes.GraphUnavailable, 'Graph 503', { retryable: true }),
    );
    const result = await w.core.process(delivery(leaving('alice@contoso.com')));
    expect(result.record).toMatchObject({ outcome: 'failed', retryable: true });
    expect(result.record.signInWatch).toBeUndefined();
    expect(w.core.scheduler.scheduled.some((s) => s.message.messageId.startsWith('watch-'))).toBe(
      false,
    );
  });

  it('Service Bus refusing the checks leaves the departure succeeded and says so', async () => {
    const w = watchWorld();
    w.core.scheduler.failNext(1);
    const record = await w.depart('alice@contoso.com');
    expect(record.signInWatch?.notScheduled).toContain('injected outage');
  });
});

describe('one check', () => {
  async function departed() {
    const w = watchWorld();
    const record = await w.depart('alice@contoso.com');
    const cutoff = Date.parse(record.signInWatch?.cutoffAt ?? '');
    return { w, record, cutoff, userId: record.objectId ?? '' };
  }

  it('a sign-in after the cut-off is recorded on the departure, announced and alerted once', async () => {
    const { w, record, cutoff, userId } = await departed();
    w.log.entries.push({ ...signIn(new Date(cutoff + 5 * MIN).toISOString()), userId });
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    const message = w.checkOf(record, 0);

    const first = await runWatchCheck(w.deps, message);
    expect(first).toMatchObject({ kind: 'recorded', incidentNow: true });
    expect(w.announced).toHaveLength(1);
    expect(w.announced[0]).toMatchObject({
      type: 'offboarding.outcome.signin-after-cutoff',
      subject: userId,
      data: {
        event: { id: record.eventId },
        signInWatch: { successesAfterCutoff: 1, signIns: [{ app: 'Salesforce' }] },
      },
    });

    // Redelivered (a lost lock), replayed: the record stands, the same event id, no second alert.
    const again = await runWatchCheck(w.deps, message);
    expect(again).toMatchObject({ kind: 'duplicate', incidentNow: false });
    expect(w.announced[1]?.id).toBe(w.announced[0]?.id);

    // The 24-hour check finds the same sign-in (and more): recorded, not announced again.
    w.log.entries.push({ ...signIn(new Date(cutoff + 120 * MIN).toISOString()), userId });
    w.core.clock.set(new Date(cutoff + 1440 * MIN));
    const later = await runWatchCheck(w.deps, w.checkOf(record, 1));
    expect(later).toMatchObject({ kind: 'recorded', incidentNow: false });
    expect(w.announced).toHaveLength(2);
    const stored = await latestRecordFor(w.core.audit, record.eventId);
    expect(stored?.outcome).toBe('succeeded');
    expect(stored?.signInWatch?.announcedBy).toBe(0);
    expect(stored?.signInWatch?.checks.map((c) => c.result?.successesAfterCutoff)).toEqual([1, 2]);
  });

  it('no sign-in closes the check as "watched: no sign-in"; failed attempts only are counted', async () => {
    const { w, record, cutoff, userId } = await departed();
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    expect(await runWatchCheck(w.deps, w.checkOf(record, 0))).toMatchObject({
      kind: 'recorded',
      finding: { verdict: 'no-sign-in', successesAfterCutoff: 0, failedAttempts: 0 },
    });
    w.log.entries.push({ ...signIn(new Date(cutoff + 70 * MIN).toISOString(), 50126), userId });
    w.core.clock.set(new Date(cutoff + 1440 * MIN));
    expect(await runWatchCheck(w.deps, w.checkOf(record, 1))).toMatchObject({
      finding: { verdict: 'failed-attempts-only', failedAttempts: 1 },
      incidentNow: false,
    });
    expect(w.announced).toEqual([]);
  });

  it('a forged message (no planned check, or before its time) changes nothing', async () => {
    const { w, record, cutoff } = await departed();
    const forged = {
      key: { identityKey: 'c'.repeat(40), contentDigest: 'd'.repeat(40) },
      check: 0,
    };
    expect(await runWatchCheck(w.deps, forged)).toMatchObject({ kind: 'ignored' });
    expect(await runWatchCheck(w.deps, { key: record, check: 5 })).toMatchObject({
      kind: 'ignored',
    });
    // Before the check is due (sign-ins not yet in the log): not run, not recorded.
    w.core.clock.set(new Date(cutoff + 30 * MIN));
    expect(await runWatchCheck(w.deps, { key: record, check: 0 })).toMatchObject({
      kind: 'ignored',
      reason: expect.stringContaining('due at') as unknown,
    });
    expect(w.log.calls).toBe(0);
    const stored = await latestRecordFor(w.core.audit, record.eventId);
    expect(stored?.signInWatch?.checks.every((c) => c.result === undefined)).toBe(true);
  });

  it('no Entra ID P1/P2: "watch unavailable", once, not retried', async () => {
    const { w, record, cutoff } = await departed();
    w.log.faults.push(
      new OffboardingError(ErrorCodes.NoPremiumLicence, 'needs Entra ID P1 or P2', {
        retryable: false,
      }),
    );
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    expect(await runWatchCheck(w.deps, w.checkOf(record, 0))).toMatchObject({
      kind: 'recorded',
      finding: { verdict: 'unavailable', errorCode: 'NoPremiumLicence' },
    });
  });

  it('429: the check comes back after Retry-After, a bounded number of times', async () => {
    const { w, record, cutoff } = await departed();
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    const throttled = () =>
      new OffboardingError(ErrorCodes.Throttled, 'Graph 429', {
        retryable: true,
        retryAfterSeconds: 120,
      });
    w.log.faults.push(throttled());
    const first = await runWatchCheck(w.deps, w.checkOf(record, 0));
    expect(first).toMatchObject({ kind: 'retry' });
    const retryCopy = w.core.scheduler
      .pending()
      .find(
        (s) =>
          s.message.messageId ===
          watchMessage(record, 0, record.signInWatch?.from ?? '', 1).messageId,
      );
    expect(retryCopy?.at.getTime()).toBeGreaterThanOrEqual(w.core.clock.now().getTime() + 120_000);
    // Retries counted on the record; after the last one the check is closed unavailable.
    for (let i = 1; i < MAX_CHECK_ATTEMPTS; i++) {
      w.log.faults.push(throttled());
      await runWatchCheck(w.deps, { key: record, check: 0 });
    }
    const stored = await latestRecordFor(w.core.audit, record.eventId);
    expect(stored?.signInWatch?.checks[0]?.result).toMatchObject({
      verdict: 'unavailable',
      errorCode: 'RetriesExhausted',
    });
  });

  it('pages are followed to the end (@odata.nextLink)', async () => {
    const { w, record, cutoff, userId } = await departed();
    w.log.pageSize = 2;
    for (let i = 0; i < 4; i++)
      w.log.entries.push({ ...signIn(new Date(cutoff - 10_000 + i).toISOString(), 50126), userId });
    w.log.entries.push({ ...signIn(new Date(cutoff - 60_000).toISOString()), userId });
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    expect(await runWatchCheck(w.deps, w.checkOf(record, 0))).toMatchObject({
      finding: { verdict: 'failed-attempts-only', failedAttempts: 4, successesBeforeCutoff: 1 },
    });
    expect(w.log.calls).toBe(3);
  });

  it('a log longer than 20 pages is read to its bound, and the finding says so', async () => {
    const { w, record, cutoff, userId } = await departed();
    w.log.pageSize = 1;
    for (let i = 0; i < 25; i++)
      w.log.entries.push({
        ...signIn(new Date(cutoff + (i + 1) * 1000).toISOString(), 50126),
        userId,
      });
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    const result = await runWatchCheck(w.deps, w.checkOf(record, 0));
    expect(w.log.calls).toBe(20);
    // Unread pages could hold a sign-in after the cut-off: no "no sign-in" is claimed.
    expect(result).toMatchObject({
      finding: { verdict: 'unavailable', errorCode: 'Truncated', failedAttempts: 20 },
    });
    expect(result.kind === 'recorded' && result.finding.note).toContain('first 20 pages');
  });

  it('an entry the adapter could not read makes the check unavailable, never "no sign-in"', async () => {
    const { w, record, cutoff } = await departed();
    w.log.unreadable = 1;
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    const result = await runWatchCheck(w.deps, w.checkOf(record, 0));
    expect(result).toMatchObject({
      finding: { verdict: 'unavailable', errorCode: 'UnreadableSignIns' },
    });
    expect(result.kind === 'recorded' && result.finding.note).toContain('could not be read');
  });

  it('a check run when the log no longer keeps the whole window (a message replayed after 30 days) claims nothing', async () => {
    const { w, record, cutoff } = await departed();
    w.core.clock.set(new Date(cutoff + 31 * 24 * 60 * MIN));
    const result = await runWatchCheck(w.deps, w.checkOf(record, 0));
    expect(result).toMatchObject({
      finding: { verdict: 'unavailable', errorCode: 'BeyondRetention' },
    });
    expect(result.kind === 'recorded' && result.finding.note).toContain('30 days');
  });

  it('an incident stands however many entries could not be read', async () => {
    const { w, record, cutoff, userId } = await departed();
    w.log.unreadable = 3;
    w.log.entries.push({ ...signIn(new Date(cutoff + 5 * MIN).toISOString()), userId });
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    expect(await runWatchCheck(w.deps, w.checkOf(record, 0))).toMatchObject({
      finding: { verdict: 'signin-after-cutoff', successesAfterCutoff: 1 },
    });
  });

  it('a person reinstated before the check: sign-ins after the reinstatement are not judged', async () => {
    const { w, record, cutoff, userId } = await departed();
    w.core.clock.set(new Date(cutoff + 30 * MIN));
    const back = await w.core.process(
      delivery(reinstatedEvent('alice@contoso.com', {}, { time: w.core.clock.iso() })),
    );
    expect(back.record.outcome).toBe('succeeded');
    w.log.entries.push({ ...signIn(new Date(cutoff + 45 * MIN).toISOString()), userId });
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    const result = await runWatchCheck(w.deps, w.checkOf(record, 0));
    expect(result).toMatchObject({ kind: 'recorded', finding: { verdict: 'no-sign-in' } });
    expect(result.kind === 'recorded' && result.finding.note).toContain('reinstated');
    expect(w.announced).toEqual([]);
  });

  it('turned off after the checks were scheduled: a check is not run', async () => {
    const { w, record, cutoff } = await departed();
    w.core.clock.set(new Date(cutoff + 60 * MIN));
    const off = { ...w.deps, settings: { ...SETTINGS, enabled: false } };
    expect(await runWatchCheck(off, w.checkOf(record, 0))).toMatchObject({ kind: 'ignored' });
  });
});

describe('a dead-lettered check (offboard dlq list / replay)', () => {
  it('is named a sign-in watch check, never an invalid event; a copy on the MFA queue is not one', async () => {
    const core = makeCore();
    const key = { identityKey: 'a'.repeat(40), contentDigest: 'b'.repeat(40) };
    const body = watchMessage(key, 1, '2026-11-30T09:00:04Z').body;
    const deps = {
      audit: core.audit,
      timelines: core.timelines,
      policy: { protectedUsers: new Set<string>(), dryRun: false },
    };
    const verdict = await replayVerdictOf(
      deps,
      { body, route: 'employeeLeaving' },
      core.clock.now(),
    );
    expect(verdict).toEqual({ kind: 'watch-check', check: 1 });
    expect(describeVerdict(verdict)).toContain('sign-in watch check (check 2');
    expect(
      (await replayVerdictOf(deps, { body, route: 'mfaEnabled' }, core.clock.now())).kind,
    ).toBe('invalid');
  });
});
