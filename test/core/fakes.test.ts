/**
 * The fakes keep the contracts of the real adapters (and of Table Storage and Graph behind them);
 * the core's tests are only worth what these are.
 */
import { ErrorCodes } from '../../shared/core/errors';
import { Secret } from '../../shared/core/password';
import type { AuditRecord } from '../../shared/core/ports';
import {
  FakeDirectory,
  FakeScheduler,
  MemoryAuditLog,
  TestClock,
  graphErrors,
  seededRandom,
} from '../support/fakes';

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    identityKey: 'id-1',
    contentDigest: 'digest-1',
    eventId: 'e1',
    user: 'Alice@Contoso.com',
    requestedActions: ['revokeSignInSessions'],
    actions: [],
    graphRequestIds: [],
    outcome: 'in-progress',
    notes: [],
    dryRun: false,
    attempts: 0,
    duplicates: 0,
    firstAttemptAt: '2026-11-30T09:00:00.000Z',
    lastAttemptAt: '2026-11-30T09:00:00.000Z',
    ...overrides,
  };
}

describe('MemoryAuditLog (as Table Storage)', () => {
  it('create is conditional on absence (409) and every write gets a new ETag', async () => {
    const audit = new MemoryAuditLog();
    const created = await audit.create(record());
    expect(created).toBeDefined();
    expect(await audit.create(record({ notes: ['second'] }))).toBeUndefined();
    const replaced = await audit.replace(record({ attempts: 1 }), created?.etag ?? '');
    expect(replaced?.etag).toBeDefined();
    expect(replaced?.etag).not.toBe(created?.etag);
  });

  it('replace fails at a moved ETag (412) or for a missing record (404)', async () => {
    const audit = new MemoryAuditLog();
    const created = await audit.create(record());
    await audit.replace(record({ attempts: 1 }), created?.etag ?? '');
    expect(await audit.replace(record({ attempts: 2 }), created?.etag ?? '')).toBeUndefined();
    expect(await audit.replace(record({ contentDigest: 'other' }), 'W/"x"')).toBeUndefined();
    expect((await audit.read(record()))?.record.attempts).toBe(1);
  });

  it('reads are copies, without undefined fields, objectId lower-cased', async () => {
    const audit = new MemoryAuditLog();
    await audit.create(record({ objectId: 'ABCDEF', errorCode: undefined }));
    const first = await audit.read(record());
    first?.record.notes.push('changed by the reader');
    const second = await audit.read(record());
    expect(second?.record.notes).toEqual([]);
    expect(second?.record.objectId).toBe('abcdef');
    expect(second?.record).not.toHaveProperty('errorCode');
  });

  it('findByUser matches user, objectId or UPN case-insensitively, oldest first', async () => {
    const audit = new MemoryAuditLog();
    await audit.create(
      record({ contentDigest: 'b', lastAttemptAt: '2026-11-30T10:00:00.000Z', user: 'x' }),
    );
    await audit.create(record({ contentDigest: 'a' }));
    await audit.create(
      record({
        contentDigest: 'c',
        user: 'someone',
        userPrincipalName: 'ALICE@contoso.com',
        lastAttemptAt: '2026-11-30T08:00:00.000Z',
      }),
    );
    await audit.create(record({ contentDigest: 'd', user: 'bob', objectId: 'B0B' }));

    const alice = await audit.findByUser('alice@CONTOSO.com');
    expect(alice.map((s) => s.record.contentDigest)).toEqual(['c', 'a']);
    expect((await audit.findByUser('b0b')).map((s) => s.record.contentDigest)).toEqual(['d']);
    expect(await audit.listIdentity('id-1')).toHaveLength(4);
    expect(await audit.findByEventId('e1')).toHaveLength(4);
  });

  it('an injected outage fails the chosen calls with a retryable AuditUnavailable', async () => {
    const audit = new MemoryAuditLog();
    audit.fail('write', 1, 1);
    await audit.create(record());
    await expect(audit.create(record({ contentDigest: 'x' }))).rejects.toMatchObject({
      code: ErrorCodes.AuditUnavailable,
      retryable: true,
    });
    expect(await audit.create(record({ contentDigest: 'x' }))).toBeDefined();
  });
});

describe('FakeDirectory (as Graph through GraphDirectory)', () => {
  it('finds users by object id or UPN in any case; an unknown one is a permanent UserNotFound', async () => {
    const clock = new TestClock();
    const directory = new FakeDirectory(clock);
    const user = directory.addUser({ userPrincipalName: 'alice@contoso.com' });
    expect((await directory.getUser({ kind: 'upn', value: 'ALICE@contoso.com' })).user.id).toBe(
      user.id,
    );
    expect(
      (await directory.getUser({ kind: 'objectId', value: user.id.toUpperCase() })).user.id,
    ).toBe(user.id);
    await expect(directory.getUser({ kind: 'upn', value: 'x@contoso.com' })).rejects.toMatchObject({
      code: ErrorCodes.UserNotFound,
      retryable: false,
    });
  });

  it('a revocation moves signInSessionsValidFromDateTime to the whole second', async () => {
    const clock = new TestClock('2026-11-30T09:00:00.789Z');
    const directory = new FakeDirectory(clock);
    const user = directory.addUser({ userPrincipalName: 'alice@contoso.com' });
    await directory.revokeSignInSessions(user.id);
    expect(user.signInSessionsValidFromDateTime).toBe('2026-11-30T09:00:00Z');
  });

  it('refuses sensitive writes to admins (403) and to synced users (400 OnPremisesMastered)', async () => {
    const directory = new FakeDirectory(new TestClock());
    const admin = directory.addUser({ userPrincipalName: 'a@contoso.com', adminRole: 'GA' });
    const synced = directory.addUser({
      userPrincipalName: 's@contoso.com',
      onPremisesSyncEnabled: true,
    });
    await expect(
      directory.resetPassword(admin.id, new Secret('x'.repeat(16))),
    ).rejects.toMatchObject({ code: ErrorCodes.Forbidden, retryable: false });
    await expect(directory.disableAccount(synced.id)).rejects.toMatchObject({
      code: ErrorCodes.OnPremisesMastered,
      retryable: false,
    });
    directory.mayManageAdmins = true;
    await directory.resetPassword(admin.id, new Secret('x'.repeat(16)));
  });

  it('takes the password only as a Secret and records calls without it', async () => {
    const directory = new FakeDirectory(new TestClock());
    const user = directory.addUser({ userPrincipalName: 'alice@contoso.com' });
    await directory.resetPassword(user.id, new Secret('Only-Here-1234567!'));
    expect(JSON.stringify(directory.calls)).not.toContain('Only-Here');
    expect(() => directory.resetPassword(user.id, 'plain text' as unknown as Secret)).toThrow(
      /Secret/,
    );
  });

  it('programmed failures hit the chosen operation and user, after the calls to let through', async () => {
    const directory = new FakeDirectory(new TestClock());
    const alice = directory.addUser({ userPrincipalName: 'alice@contoso.com' });
    const bob = directory.addUser({ userPrincipalName: 'bob@contoso.com' });
    directory.failNext('revokeSignInSessions', () => graphErrors.throttled(12), {
      user: 'BOB@contoso.com',
      skip: 1,
    });
    await directory.revokeSignInSessions(bob.id);
    await directory.revokeSignInSessions(alice.id);
    await expect(directory.revokeSignInSessions(bob.id)).rejects.toMatchObject({
      code: ErrorCodes.Throttled,
      retryable: true,
      retryAfterSeconds: 12,
    });
    await directory.revokeSignInSessions(bob.id);
    expect(directory.calls.map((c) => c.result)).toEqual(['ok', 'ok', ErrorCodes.Throttled, 'ok']);
  });
});

describe('FakeScheduler and randomness', () => {
  it('returns increasing sequence numbers; cancel is false once cancelled or delivered', async () => {
    const scheduler = new FakeScheduler();
    const at = new Date('2026-12-01T00:00:00Z');
    const one = await scheduler.schedule(
      'q',
      { body: {}, messageId: 'a', applicationProperties: {} },
      at,
    );
    const two = await scheduler.schedule(
      'q',
      { body: {}, messageId: 'b', applicationProperties: {} },
      at,
    );
    expect(BigInt(two)).toBeGreaterThan(BigInt(one));
    expect(await scheduler.cancel('q', one)).toBe(true);
    expect(await scheduler.cancel('q', one)).toBe(false);
    scheduler.take(scheduler.last());
    expect(await scheduler.cancel('q', two)).toBe(false);
  });

  it('seededRandom is deterministic and in [0, 1)', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const values = Array.from({ length: 100 }, () => a());
    expect(values).toEqual(Array.from({ length: 100 }, () => b()));
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
  });
});
