import { TableClient } from '@azure/data-tables';
import { latestRecordFor } from '../../shared/core/auditRecords';
import {
  ADMIN_ID,
  ALICE_ID,
  ALICE_UPN,
  BREAKGLASS_ID,
  BREAKGLASS_UPN,
  DOLLAR_ID,
  DOLLAR_UPN,
  GUEST_ID,
  GUEST_UPN,
  SYNCED_ID,
  SYNCED_UPN,
} from '../../dev/graph-standin/index';
import { createQueueHandler, SettlementError } from '../../shared/adapters/functionHandler';
import { TIMELINE_PARTITION } from '../../shared/adapters/tableAuditLog';
import type { AuditRecord } from '../../shared/core/ports';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;

/** A fresh user per test (see World.newUser). */
let bob: { id: string; upn: string };
beforeEach(() => {
  bob = world.newUser();
});

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world.stop();
});
beforeEach(() => {
  world.graph.reset();
  world.logs.length = 0;
});

const leavingHandler = () => createQueueHandler(() => world.runtime, 'employeeLeaving');
const mfaHandler = () => createQueueHandler(() => world.runtime, 'mfaEnabled');

async function deliver(
  handler: ReturnType<typeof leavingHandler>,
  body: unknown,
  messageId?: string,
): Promise<SettlementError | undefined> {
  try {
    await handler(body, world.context(messageId === undefined ? {} : { messageId }));
    return undefined;
  } catch (error) {
    if (error instanceof SettlementError) return error;
    throw error;
  }
}

async function auditOf(eventId: string): Promise<AuditRecord> {
  const record = await latestRecordFor(world.runtime.audit, eventId);
  if (!record) throw new Error(`no audit record for ${eventId}`);
  return record;
}

const writes = () => world.graph.writes().map((r) => `${r.method} ${r.decodedPath}`);

describe('employee.leaving end to end', () => {
  it('disables the account, revokes sessions, proves it and audits once', async () => {
    const before = world.graph.getUser(ALICE_ID)?.signInSessionsValidFromDateTime;
    const event = cloudEvent('employee.leaving', {
      user: ALICE_UPN,
      reason: 'resignation',
      ticket: 'HR-4711',
    });
    expect(await deliver(leavingHandler(), event)).toBeUndefined();

    expect(writes()).toEqual([
      `PATCH /v1.0/users/${ALICE_ID}`,
      `POST /v1.0/users/${ALICE_ID}/revokeSignInSessions`,
    ]);
    expect(world.graph.writes()[0]?.body).toEqual({ accountEnabled: false });
    const user = world.graph.getUser(ALICE_ID);
    expect(user?.accountEnabled).toBe(false);

    const record = await auditOf(event.id as string);
    expect(record).toMatchObject({
      eventId: event.id,
      eventType: 'employee.leaving',
      source: '/hr/workday',
      user: ALICE_UPN,
      objectId: ALICE_ID,
      userPrincipalName: ALICE_UPN,
      requestedActions: ['disableAccount', 'revokeSignInSessions'],
      outcome: 'succeeded',
      reason: 'resignation',
      ticket: 'HR-4711',
      attempts: 1,
      duplicates: 0,
      dryRun: false,
    });
    expect(record.actions.map((a) => [a.action, a.status])).toEqual([
      ['disableAccount', 'succeeded'],
      ['revokeSignInSessions', 'succeeded'],
    ]);
    expect(record.verification?.verified).toBe(true);
    expect(record.verification?.previousSignInSessionsValidFrom).toBe(before);
    expect(record.verification?.signInSessionsValidFrom).toBe(
      user?.signInSessionsValidFromDateTime,
    );
    expect(Date.parse(record.verification?.signInSessionsValidFrom ?? '')).toBeGreaterThan(
      Date.parse(before ?? ''),
    );
    // Every Graph call's request id is kept for support cases.
    expect(record.graphRequestIds).toEqual(world.graph.requests.map((r) => r.requestId));
    expect(
      world.logs.some((l) => l.level === 'information' && l.text.includes('Event processed')),
    ).toBe(true);
  });

  it('calls Graph with a managed identity token for the GRAPH_ENDPOINT resource', async () => {
    await deliver(mfaHandler(), cloudEvent('mfa.enabled', { user: bob.upn }));
    // The scope follows GRAPH_ENDPOINT (sovereign clouds), here the stand-in's own URL.
    expect(world.identity.requests.map((r) => r.resource)).toContain(world.graph.url);
    expect(world.graph.requests.length).toBeGreaterThan(0);
    for (const request of world.graph.requests) {
      expect(request.headers.authorization).toMatch(/^Bearer ey/);
      expect(request.status).toBeLessThan(300);
    }
  });

  it('leaves the account enabled when disableAccount is false', async () => {
    const event = cloudEvent('com.contoso.hr.employee.leaving', {
      user: bob.id,
      disableAccount: false,
    });
    expect(await deliver(leavingHandler(), event)).toBeUndefined();
    expect(writes()).toEqual([`POST /v1.0/users/${bob.id}/revokeSignInSessions`]);
  });

  it('addresses a guest by %23EXT%23 and records that revocation does not reach the home tenant', async () => {
    const event = cloudEvent('employee.leaving', { user: GUEST_UPN });
    expect(await deliver(leavingHandler(), event)).toBeUndefined();
    expect(world.graph.requests[0]?.path).toContain(
      'carol_fabrikam.com%23EXT%23@contoso.onmicrosoft.com',
    );
    const record = await auditOf(event.id as string);
    expect(record.objectId).toBe(GUEST_ID);
    expect(record.outcome).toBe('succeeded');
    expect(record.notes.join(' ')).toMatch(
      /does not reach the home tenant.*disabling the account is what blocks access/,
    );
  });

  it("addresses a UPN starting with $ as users('...')", async () => {
    const event = cloudEvent('employee.leaving', { user: DOLLAR_UPN, disableAccount: false });
    expect(await deliver(leavingHandler(), event)).toBeUndefined();
    expect(world.graph.requests[0]?.path).toMatch(/^\/v1\.0\/users\('\$svc-legacy@contoso\.com'\)/);
    expect((await auditOf(event.id as string)).objectId).toBe(DOLLAR_ID);
  });

  it('still revokes a synced user and says the disable and reset belong in on-premises AD', async () => {
    const event = cloudEvent('employee.leaving', { user: SYNCED_UPN, resetPassword: true });
    const error = await deliver(leavingHandler(), event);
    expect(error).toMatchObject({ code: 'OnPremisesMastered', retryable: false });
    expect(writes()).toEqual([`POST /v1.0/users/${SYNCED_ID}/revokeSignInSessions`]);
    const record = await auditOf(event.id as string);
    expect(record.outcome).toBe('failed');
    expect(record.actions.map((a) => [a.action, a.status, a.errorCode])).toEqual([
      ['disableAccount', 'failed', 'OnPremisesMastered'],
      ['resetPassword', 'failed', 'OnPremisesMastered'],
      ['revokeSignInSessions', 'succeeded', undefined],
    ]);
    expect(record.actions[0]?.message).toMatch(/disable the account in on-premises AD/);
    expect(record.verification?.verified).toBe(true);
  });

  it('attempts every action on an admin, names the missing role on 403 and never retries it', async () => {
    const event = cloudEvent('employee.leaving', {
      user: ADMIN_ID,
      disableAccount: false,
      resetPassword: true,
    });
    const messageId = 'msg-admin-1';
    const error = await deliver(leavingHandler(), event, messageId);
    expect(error).toMatchObject({ code: 'Forbidden', retryable: false });
    expect(writes()).toEqual([
      `PATCH /v1.0/users/${ADMIN_ID}`,
      `POST /v1.0/users/${ADMIN_ID}/revokeSignInSessions`,
    ]);
    const record = await auditOf(event.id as string);
    const reset = record.actions.find((a) => a.action === 'resetPassword');
    expect(reset?.status).toBe('failed');
    expect(reset?.message).toMatch(/Authorization_RequestDenied/);
    expect(reset?.message).toMatch(
      /User-PasswordProfile\.ReadWrite\.All and the Entra role User Administrator/,
    );
    expect(reset?.message).toMatch(/Privileged Authentication Administrator/);
    expect(record.actions.find((a) => a.action === 'revokeSignInSessions')?.status).toBe(
      'succeeded',
    );

    // The same message again (Service Bus redelivery): no Graph call at all, straight on to the DLQ.
    world.graph.reset();
    const again = await deliver(leavingHandler(), event, messageId);
    expect(again).toMatchObject({ code: 'Forbidden', retryable: false });
    expect(world.graph.requests).toHaveLength(0);
    // A redelivery of a final failure is a duplicate, not another attempt.
    expect(await auditOf(event.id as string)).toMatchObject({ attempts: 1, duplicates: 1 });
  });

  it('fails permanently on an unknown user without any write', async () => {
    const event = cloudEvent('employee.leaving', { user: 'nobody@contoso.com' });
    const error = await deliver(leavingHandler(), event);
    expect(error).toMatchObject({ code: 'UserNotFound', retryable: false });
    expect(error?.message).toMatch(/No such user in this tenant/);
    // Logs and the exception name the event, not the user; the audit keeps the user.
    expect(error?.message).toMatch(/Resource '<user>' does not exist/);
    expect(error?.message).not.toContain('nobody@contoso.com');
    expect(world.logs.map((l) => l.text).join('\n')).not.toContain('nobody@contoso.com');
    expect(writes()).toEqual([]);
    expect((await auditOf(event.id as string)).outcome).toBe('failed');
  });

  it.each([
    ['UPN', BREAKGLASS_UPN.toUpperCase()],
    ['object id', BREAKGLASS_ID],
  ])('refuses a protected account named by %s and audits the refusal', async (_how, user) => {
    const event = cloudEvent('employee.leaving', { user, resetPassword: true });
    const error = await deliver(leavingHandler(), event);
    expect(error).toMatchObject({ code: 'ProtectedAccount', retryable: false });
    expect(writes()).toEqual([]);
    const record = await auditOf(event.id as string);
    expect(record.outcome).toBe('refused');
    expect(record.actions.every((a) => a.status === 'not-attempted')).toBe(true);
  });

  it('counts a duplicate delivery of a finished event and writes nothing more', async () => {
    const event = cloudEvent('employee.leaving', { user: bob.upn, disableAccount: false });
    expect(await deliver(leavingHandler(), event, 'msg-dup-1')).toBeUndefined();
    world.graph.reset();
    expect(await deliver(leavingHandler(), event, 'msg-dup-2')).toBeUndefined();
    expect(await deliver(leavingHandler(), JSON.stringify(event), 'msg-dup-3')).toBeUndefined();
    expect(writes()).toEqual([]);
    const record = await auditOf(event.id as string);
    expect(record).toMatchObject({ outcome: 'succeeded', attempts: 1, duplicates: 2 });
  });
});

describe('mfa.enabled end to end', () => {
  it('only revokes sessions, and proves it', async () => {
    const event = cloudEvent('mfa.enabled', { user: bob.upn, ticket: 'MFA-WAVE-3' });
    expect(await deliver(mfaHandler(), Buffer.from(JSON.stringify(event)))).toBeUndefined();
    expect(writes()).toEqual([`POST /v1.0/users/${bob.id}/revokeSignInSessions`]);
    const record = await auditOf(event.id as string);
    expect(record).toMatchObject({
      outcome: 'succeeded',
      requestedActions: ['revokeSignInSessions'],
      ticket: 'MFA-WAVE-3',
    });
    expect(record.verification?.verified).toBe(true);
  });

  it('rejects a leaver event sent to the MFA queue before any Graph call', async () => {
    const event = cloudEvent('employee.leaving', { user: bob.upn });
    const error = await deliver(mfaHandler(), event);
    expect(error).toMatchObject({ code: 'InvalidEvent', retryable: false });
    expect(world.graph.requests).toHaveLength(0);
  });
});

describe('dry run', () => {
  it('reads and evaluates, writes nothing, and audits what it would have done', async () => {
    const runtime = world.runtimeWith({ DRY_RUN: 'true' });
    const handler = createQueueHandler(() => runtime, 'employeeLeaving');
    const event = cloudEvent('employee.leaving', { user: ALICE_ID, resetPassword: true });
    await handler(event, world.context());
    expect(writes()).toEqual([]);
    expect(world.graph.requests.map((r) => r.method)).toEqual(['GET']);
    const record = await latestRecordFor(runtime.audit, event.id as string);
    expect(record?.outcome).toBe('dry-run');
    expect(record?.dryRun).toBe(true);
    expect(record?.actions.map((a) => [a.action, a.status])).toEqual([
      ['disableAccount', 'would-run'],
      ['resetPassword', 'would-run'],
      ['revokeSignInSessions', 'would-run'],
    ]);
  });
});

describe('bad input never reaches Graph', () => {
  const valid = () => cloudEvent('employee.leaving', { user: ALICE_UPN });
  const bodies: Array<[string, unknown]> = [
    ['empty body', ''],
    ['not JSON', '{"specversion": "1.0",'],
    ['binary garbage', Buffer.from([0xff, 0x00, 0x13])],
    ['oversized', JSON.stringify({ ...valid(), padding: 'x'.repeat(70 * 1024) })],
    ['array', [valid()]],
    ['wrong specversion', { ...valid(), specversion: '0.3' }],
    ['missing id', { ...valid(), id: undefined }],
    ['missing source', { ...valid(), source: undefined }],
    ['unknown type', { ...valid(), type: 'employee.promoted' }],
    ['bad time', { ...valid(), time: '27/11/2026' }],
    ['missing data', { ...valid(), data: undefined }],
    ['missing user', { ...valid(), data: {} }],
    ['user is a display name', { ...valid(), data: { user: 'Alice Anderson' } }],
    ['user with a path', { ...valid(), data: { user: '../users/alice@contoso.com' } }],
    ['user with a query', { ...valid(), data: { user: 'alice@contoso.com?$select=id' } }],
    ['user with an ampersand', { ...valid(), data: { user: 'alice&bob@contoso.com' } }],
    ['user with a newline', { ...valid(), data: { user: 'alice@contoso.com\n' } }],
    ['user with a raw #', { ...valid(), data: { user: 'carol#EXT#contoso.com' } }],
    ['disableAccount as text', { ...valid(), data: { user: ALICE_UPN, disableAccount: 'no' } }],
    ['unknown data field', { ...valid(), data: { user: ALICE_UPN, resetPasword: true } }],
    ['reason too long', { ...valid(), data: { user: ALICE_UPN, reason: 'r'.repeat(300) } }],
    ['leave date not a date', { ...valid(), data: { user: ALICE_UPN, effectiveAt: 'soon' } }],
  ];

  it.each(bodies)('%s: clear error, audited, no Graph call', async (_kind, body) => {
    const messageId = `bad-${Math.random()}`;
    const error = await deliver(leavingHandler(), body, messageId);
    expect(error).toMatchObject({ code: 'InvalidEvent', retryable: false });
    expect(error?.message).toMatch(/Permanent failure InvalidEvent/);
    expect(world.graph.requests).toHaveLength(0);
    const key =
      typeof body === 'object' && body !== null && 'id' in body && typeof body.id === 'string'
        ? body.id
        : `message:${messageId}`;
    const record = await auditOf(key);
    expect(record).toMatchObject({
      outcome: 'failed',
      errorCode: 'InvalidEvent',
      retryable: false,
    });
  });
});

/** A runtime whose audit table endpoint is a closed port: the store is down. */
function runtimeWithAuditDown(extra: Record<string, string> = {}) {
  return world.runtimeWith({
    AUDIT_TABLE_CONNECTION_STRING: world.env.AUDIT_TABLE_CONNECTION_STRING!.replace(
      /TableEndpoint=http:\/\/127\.0\.0\.1:\d+/,
      'TableEndpoint=http://127.0.0.1:9',
    ),
    ...extra,
  });
}

describe('transient failures', () => {
  it('turns Graph 429 into a scheduled retry that honours Retry-After, and the retry converges', async () => {
    const event = cloudEvent('mfa.enabled', { user: bob.upn });
    world.graph.injectFault({ operation: 'revoke', status: 429, retryAfterSeconds: 7 });
    const started = Date.now();
    expect(await deliver(mfaHandler(), event, 'msg-429')).toBeUndefined(); // completed: a retry is parked
    const record = await auditOf(event.id as string);
    expect(record).toMatchObject({ outcome: 'failed', errorCode: 'Throttled', retryable: true });
    expect(Date.parse(record.nextAttemptAt ?? '')).toBeGreaterThanOrEqual(started + 7000);
    expect(world.serviceBus.stats('mfa-enabled').scheduled).toBe(1);
    expect(
      world.logs.some((l) => l.level === 'warning' && l.text.includes('retry scheduled')),
    ).toBe(true);

    // The scheduled copy, delivered as attempt 2, succeeds.
    const retry = world.context({
      messageId: 'msg-429-retry',
      applicationProperties: { offboardingAttempt: 2 },
    });
    await mfaHandler()(event, retry);
    expect(await auditOf(event.id as string)).toMatchObject({ outcome: 'succeeded', attempts: 2 });
  });

  it('does not reset a password twice when a later action failed and the event is retried', async () => {
    const event = cloudEvent('employee.leaving', { user: bob.upn, resetPassword: true });
    world.graph.injectFault({ operation: 'revoke', status: 503, userKey: bob.id });
    expect(await deliver(leavingHandler(), event, 'msg-carry')).toBeUndefined(); // retry parked
    const first = await auditOf(event.id as string);
    expect(first.actions.map((a) => [a.action, a.status])).toEqual([
      ['disableAccount', 'succeeded'],
      ['resetPassword', 'succeeded'],
      ['revokeSignInSessions', 'failed'],
    ]);
    expect(world.graph.passwordResetCount(bob.id)).toBe(1);

    const retry = world.context({
      messageId: 'msg-carry-retry',
      applicationProperties: { offboardingAttempt: 2 },
    });
    await leavingHandler()(event, retry);
    const done = await auditOf(event.id as string);
    expect(done).toMatchObject({ outcome: 'succeeded', attempts: 2 });
    expect(done.actions.find((a) => a.action === 'resetPassword')?.message).toBe(
      'Done in an earlier attempt.',
    );
    expect(world.graph.passwordResetCount(bob.id)).toBe(1);
  });

  it('gives a retry copy a deterministic new id, so a crash before completing cannot park two', async () => {
    const event = cloudEvent('mfa.enabled', { user: bob.upn });
    world.graph.injectFault({ operation: 'revoke', status: 503, times: 2 });
    const dropped = world.serviceBus.stats('mfa-enabled').duplicatesDropped;
    // The same delivery handled twice, as after a crash between scheduling and completing.
    await deliver(mfaHandler(), event, 'msg-twice');
    await deliver(mfaHandler(), event, 'msg-twice');
    expect(world.serviceBus.stats('mfa-enabled').duplicatesDropped).toBe(dropped + 1);
  });

  it('gives up after RETRY_MAX_ATTEMPTS and sends the event towards the dead-letter queue', async () => {
    const runtime = world.runtimeWith({ RETRY_MAX_ATTEMPTS: '2' });
    const handler = createQueueHandler(() => runtime, 'mfaEnabled');
    const event = cloudEvent('mfa.enabled', { user: bob.upn });
    world.graph.injectFault({ operation: 'revoke', status: 503, times: Infinity, userKey: bob.id });
    await handler(event, world.context({ messageId: 'msg-ex-1' })); // attempt 1: retry parked
    const last = world.context({
      messageId: 'msg-ex-2',
      applicationProperties: { offboardingAttempt: 2 },
    });
    await expect(handler(event, last)).rejects.toMatchObject({
      code: 'RetriesExhausted',
      retryable: false,
    });
    const record = await latestRecordFor(runtime.audit, event.id as string);
    expect(record).toMatchObject({
      outcome: 'failed',
      retryable: false,
      errorCode: 'RetriesExhausted',
      attempts: 2,
    });
    expect(record?.errorMessage).toMatch(
      /^Gave up after 2 attempts; last error GraphUnavailable: /,
    );
    expect(record?.nextAttemptAt).toBeUndefined();

    // Its redeliveries go straight on to the dead-letter queue without calling Graph.
    world.graph.reset();
    await expect(handler(event, last)).rejects.toMatchObject({ code: 'RetriesExhausted' });
    expect(world.graph.requests).toHaveLength(0);
  });

  it('retries a short Retry-After inside the invocation, but never waits out a long one', async () => {
    const runtime = world.runtimeWith({
      GRAPH_MAX_RETRIES: '2',
      GRAPH_MAX_RETRY_WAIT_SECONDS: '1',
    });
    const revokes = () => world.graph.requests.filter((r) => r.operation === 'revoke').length;

    world.graph.injectFault({ operation: 'revoke', status: 429, retryAfterSeconds: 0.2 });
    const quick = await runtime.offboarding.process({
      body: cloudEvent('mfa.enabled', { user: bob.upn }),
      route: 'command',
      messageId: 'msg-short-wait',
    });
    expect(quick.record.outcome).toBe('succeeded');
    expect(revokes()).toBe(2);

    world.graph.reset();
    const other = world.newUser();
    world.graph.injectFault({ operation: 'revoke', status: 429, retryAfterSeconds: 30 });
    const slow = await runtime.offboarding.process({
      body: cloudEvent('mfa.enabled', { user: other.upn }),
      route: 'command',
      messageId: 'msg-long-wait',
    });
    expect(revokes()).toBe(1); // no second call: the wait is left to a delayed retry
    expect(slow.disposition).toBe('retry');
    expect(slow.error).toMatchObject({ code: 'Throttled', retryAfterSeconds: 30 });
  });

  it('treats Graph 5xx as retryable', async () => {
    const event = cloudEvent('mfa.enabled', { user: bob.upn });
    world.graph.injectFault({ operation: 'getUser', status: 503 });
    expect(await deliver(mfaHandler(), event)).toBeUndefined();
    expect(await auditOf(event.id as string)).toMatchObject({
      errorCode: 'GraphUnavailable',
      retryable: true,
    });
    expect(writes()).toEqual([]);
  });

  it('treats a token endpoint outage as retryable', async () => {
    // A user-assigned identity that has no cached token yet.
    const runtime = world.runtimeWith({ AZURE_CLIENT_ID: '0b5e55ed-0000-4000-8000-00000000c11d' });
    world.identity.setDown(true);
    try {
      const result = await runtime.offboarding.process({
        body: cloudEvent('mfa.enabled', { user: bob.upn }),
        route: 'command',
        messageId: 'msg-token-down',
      });
      expect(result.disposition).toBe('retry');
      expect(result.error).toMatchObject({ code: 'AuthenticationFailed', retryable: true });
      expect(result.error?.message).toMatch(/managed identity/);
    } finally {
      world.identity.setDown(false);
    }
    expect(world.graph.requests).toHaveLength(0);
  }, 30_000);

  it('does not act when the audit store is down: a retry is parked, nothing lost, no delivery burnt', async () => {
    const runtime = runtimeWithAuditDown();
    const handler = createQueueHandler(() => runtime, 'mfaEnabled');
    const context = world.context({ messageId: 'msg-audit-down' });
    await handler(cloudEvent('mfa.enabled', { user: bob.upn }), context);
    const warning = world.logs.find(
      (l) => l.level === 'warning' && l.text.includes('retry scheduled'),
    );
    expect(warning?.text).toMatch(/"errorCode":"AuditUnavailable"/);
    // The copy for attempt 2 is waiting on the queue.
    const receiver = runtime.serviceBus().createReceiver('mfa-enabled');
    const waiting = await receiver.peekMessages(100);
    await receiver.close();
    const copy = waiting.find(
      (m) => m.applicationProperties?.offboardingOriginalMessageId === 'msg-audit-down',
    );
    expect(copy?.applicationProperties?.offboardingAttempt).toBe(2);
    expect(world.graph.requests).toHaveLength(0);
  }, 60_000);

  it('throws (Service Bus redelivers) when neither the audit nor Service Bus can be reached', async () => {
    const runtime = runtimeWithAuditDown({
      ServiceBusConnection:
        'Endpoint=sb://127.0.0.1:9;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;',
    });
    const handler = createQueueHandler(() => runtime, 'mfaEnabled');
    await expect(
      handler(cloudEvent('mfa.enabled', { user: bob.upn }), world.context()),
    ).rejects.toMatchObject({
      code: 'AuditUnavailable',
      retryable: true,
    });
    expect(world.graph.requests).toHaveLength(0);
  }, 120_000);
});

describe('verification', () => {
  it('retries when the revocation does not show yet (a lagging replica), then proves it', async () => {
    world.graph.setReadLagMs(60_000);
    const event = cloudEvent('mfa.enabled', { user: bob.upn });
    try {
      expect(await deliver(mfaHandler(), event, 'msg-lag')).toBeUndefined(); // a retry is parked
      const first = await auditOf(event.id as string);
      expect(first).toMatchObject({
        outcome: 'failed',
        errorCode: 'VerificationFailed',
        retryable: true,
      });
      expect(first.verification?.verified).toBe(false);
      expect(first.actions).toEqual([
        expect.objectContaining({ action: 'revokeSignInSessions', status: 'succeeded' }),
      ]);
    } finally {
      world.graph.setReadLagMs(0);
    }
    // The retry (which comes seconds later in real life: Graph keeps whole seconds) revokes again
    // and now reads the new value back.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await mfaHandler()(
      event,
      world.context({
        messageId: 'msg-lag-retry',
        applicationProperties: { offboardingAttempt: 2 },
      }),
    );
    const done = await auditOf(event.id as string);
    expect(done).toMatchObject({ outcome: 'succeeded', attempts: 2 });
    expect(done.verification?.verified).toBe(true);
  });
});

describe('permissions', () => {
  it('names the missing Graph permission on 403', async () => {
    const clientId = '0b5e55ed-0000-4000-8000-0000000000a1';
    world.identity.setRoles(['User.Read.All'], clientId);
    const runtime = world.runtimeWith({ AZURE_CLIENT_ID: clientId });
    const result = await runtime.offboarding.process({
      body: cloudEvent('mfa.enabled', { user: bob.upn }),
      route: 'command',
      messageId: 'msg-no-role',
    });
    expect(result.disposition).toBe('reject');
    expect(result.error?.code).toBe('Forbidden');
    expect(result.error?.message).toMatch(
      /Grant the managed identity the Microsoft Graph application permission User\.RevokeSessions\.All/,
    );
  });
});

describe('audit table', () => {
  it('keeps one entity per event id and no secrets', async () => {
    const table = TableClient.fromConnectionString(
      world.env.AUDIT_TABLE_CONNECTION_STRING!,
      world.env.AUDIT_TABLE_NAME!,
      {
        allowInsecureConnection: true,
      },
    );
    const entities = [];
    for await (const entity of table.listEntities()) entities.push(entity);
    const ids = entities
      .filter((e) => e.partitionKey !== TIMELINE_PARTITION)
      .map((e) => e.eventId as string);
    expect(new Set(ids).size).toBe(ids.length);
    expect(JSON.stringify(entities)).not.toMatch(/password"\s*:|access_token|Bearer /i);
  });
});
