/**
 * The sign-in watch end to end: the real handler with a real InvocationContext, the real Graph
 * client against the Graph stand-in's sign-in log (shape, $filter, paging, 429, licence, ingestion
 * delay), the real Service Bus SDK against its stand-in (the checks are scheduled there, the
 * incident is published on the outcome topic) and the audit table in Azurite. The checks are due
 * an hour and more after the cut-off: the test moves the watch's clock, never the stand-ins'.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { format } from 'node:util';
import { randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { SIGNIN_AFTER_CUTOFF, createQueueHandler } from '../../shared/adapters/functionHandler';
import { GraphDirectory } from '../../shared/adapters/graphDirectory';
import { latestRecordFor } from '../../shared/core/auditRecords';
import type { OutgoingMessage } from '../../shared/core/messaging';
import { watchMessage } from '../../shared/core/signInWatch';
import type { AuditRecord } from '../../shared/core/ports';
import type { Runtime } from '../../shared/app/runtime';
import { listenToOutcomes, type OutcomeListener } from '../support/outcomes';
import { cloudEvent, startWorld, type World } from '../support/world';
import type { SeedSignIn } from '../../dev/graph-standin/index';
import { ManagedIdentityCredential } from '@azure/identity';

const MIN = 60_000;
let world: World;
let runtime: Runtime;
let outcomes: OutcomeListener;
/** Every message the runtime scheduled (they are on the Service Bus stand-in too). */
const scheduled: Array<{ queue: string; message: OutgoingMessage; at: Date }> = [];

beforeAll(async () => {
  world = await startWorld();
  runtime = world.runtimeWith({ SIGNIN_WATCH_ENABLED: 'true' });
  const schedule = runtime.scheduler.schedule.bind(runtime.scheduler);
  runtime.scheduler.schedule = (queue, message, at) => {
    scheduled.push({ queue, message, at });
    return schedule(queue, message, at);
  };
  outcomes = listenToOutcomes(world);
});
afterAll(async () => {
  await outcomes.close();
  await world.stop();
});

const contract = JSON.parse(
  readFileSync(join(__dirname, '..', '..', 'infra', 'contract.json'), 'utf8'),
) as { logs: { signInAfterCutoff: string }; graph: { permissions: string[] } };

function capture() {
  const lines: { level: string; text: string }[] = [];
  const context = (properties: Record<string, unknown> = {}) =>
    new InvocationContext({
      invocationId: randomUUID(),
      functionName: 'employeeLeaving',
      triggerMetadata: {
        messageId: randomUUID(),
        deliveryCount: 1,
        applicationProperties: properties,
      },
      logHandler: (level, ...args) => lines.push({ level, text: format(...args) }),
    });
  return {
    lines,
    context,
    alerts: () => lines.filter((l) => l.text.startsWith(SIGNIN_AFTER_CUTOFF)),
  };
}

/** A departure through the real handler; returns its record and its scheduled checks. */
async function depart(
  handler: ReturnType<typeof createQueueHandler>,
  logs: ReturnType<typeof capture>,
) {
  const leaver = world.newUser();
  const event = cloudEvent('employee.leaving', { user: leaver.upn, ticket: 'HR-WATCH' });
  await handler(event, logs.context());
  const record = (await latestRecordFor(runtime.audit, event.id as string)) as AuditRecord;
  expect(record.outcome).toBe('succeeded');
  const ids = (record.signInWatch?.checks ?? []).map(
    (_, i) => watchMessage(record, i, record.signInWatch?.from ?? '').messageId,
  );
  const checks = scheduled.filter((s) => ids.includes(s.message.messageId));
  return { leaver, event, record, checks, cutoff: Date.parse(record.signInWatch?.cutoffAt ?? '') };
}

/** Delivers a scheduled check as the trigger would, with the watch's clock at `at`. */
async function deliver(
  handler: ReturnType<typeof createQueueHandler>,
  logs: ReturnType<typeof capture>,
  check: { message: OutgoingMessage },
  at: number,
) {
  runtime.signInWatch.now = () => new Date(at);
  await handler(
    structuredClone(check.message.body),
    logs.context(check.message.applicationProperties),
  );
}

/** A departure, one sign-in of the leaver 30 minutes after the cut-off, then its first check. */
async function firstCheckWith(signIn: Omit<SeedSignIn, 'userId' | 'createdDateTime'>) {
  const handler = createQueueHandler(() => runtime, 'employeeLeaving');
  const logs = capture();
  const { leaver, event, checks, cutoff } = await depart(handler, logs);
  world.graph.addSignIn({
    ...signIn,
    userId: leaver.id,
    createdDateTime: new Date(cutoff + 30 * MIN).toISOString(),
  });
  await deliver(handler, logs, checks[0] as { message: OutgoingMessage }, cutoff + 60 * MIN);
  const stored = await latestRecordFor(runtime.audit, event.id as string);
  return { result: stored?.signInWatch?.checks[0]?.result, alerts: logs.alerts() };
}

describe('the sign-in watch through the real handler', () => {
  it('is the line the alert queries (contract.logs.signInAfterCutoff); its permission is not granted by default', () => {
    expect(contract.logs.signInAfterCutoff).toBe(SIGNIN_AFTER_CUTOFF);
    expect(contract.graph.permissions).not.toContain('AuditLog.Read.All');
  });

  it('a departed user who signs in after the cut-off is reported once: record, outcome event, alert line', async () => {
    const handler = createQueueHandler(() => runtime, 'employeeLeaving');
    const logs = capture();
    const { leaver, event, record, checks, cutoff } = await depart(handler, logs);
    expect(checks.map((c) => [c.queue, c.at.getTime() - cutoff])).toEqual([
      ['employee-leaving', 60 * MIN],
      ['employee-leaving', 1440 * MIN],
    ]);
    expect(record.signInWatch?.checks.every((c) => /^\d+$/.test(c.sequenceNumber ?? ''))).toBe(
      true,
    );

    // In the log: one failed attempt, one success before the cut-off, one after it.
    world.graph.addSignIn({
      userId: leaver.id,
      createdDateTime: new Date(cutoff - 5 * MIN).toISOString(),
    });
    world.graph.addSignIn({
      userId: leaver.id,
      createdDateTime: new Date(cutoff + 10 * MIN).toISOString(),
      errorCode: 50126,
    });
    world.graph.addSignIn({
      userId: leaver.id,
      createdDateTime: new Date(cutoff + 20 * MIN).toISOString(),
      appDisplayName: 'Salesforce',
      ipAddress: '198.51.100.23',
      clientAppUsed: 'Mobile Apps and Desktop clients',
      caeToken: false,
    });
    // Someone else's sign-in is not this person's.
    world.graph.addSignIn({
      userId: world.newUser().id,
      createdDateTime: new Date(cutoff + 20 * MIN).toISOString(),
    });

    const [first, second] = checks;
    await deliver(handler, logs, first as { message: OutgoingMessage }, cutoff + 60 * MIN);
    await deliver(handler, logs, first as { message: OutgoingMessage }, cutoff + 61 * MIN); // redelivered

    const stored = (await latestRecordFor(runtime.audit, event.id as string)) as AuditRecord;
    expect(stored.outcome).toBe('succeeded');
    expect(stored.signInWatch?.checks[0]?.result).toMatchObject({
      verdict: 'signin-after-cutoff',
      successesAfterCutoff: 1,
      successesBeforeCutoff: 1,
      failedAttempts: 1,
      signIns: [{ app: 'Salesforce', ipAddress: '198.51.100.23', caeToken: false }],
    });
    const published = await outcomes.announced(event.id as string, 'signin-after-cutoff');
    expect(published).toMatchObject({
      type: 'offboarding.outcome.signin-after-cutoff',
      subject: leaver.id,
      data: {
        ticket: 'HR-WATCH',
        signInWatch: {
          cutoffAt: stored.signInWatch?.cutoffAt,
          successesAfterCutoff: 1,
          failedAttempts: 1,
          signIns: [
            {
              app: 'Salesforce',
              ipAddress: '198.51.100.23',
              clientAppUsed: 'Mobile Apps and Desktop clients',
              caeToken: false,
            },
          ],
        },
      },
    });
    const alerts = logs.alerts();
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.level).toBe('error');
    expect(alerts[0]?.text).toContain(`objectId: '${leaver.id}'`);
    // Ids, times and counts only: the address and the UPN stay in the audit and the event.
    expect(alerts[0]?.text).not.toContain('198.51.100.23');
    expect(alerts[0]?.text).not.toContain(leaver.upn);

    // The 24-hour check: recorded, the incident is not announced again.
    await deliver(handler, logs, second as { message: OutgoingMessage }, cutoff + 1440 * MIN);
    expect(logs.alerts()).toHaveLength(1);
    const ids = new Set(
      outcomes
        .about(event.id as string)
        .filter((o) => o.outcome === 'signin-after-cutoff')
        .map((o) => o.id),
    );
    expect(ids.size).toBe(1);
  });

  it('a refresh token redeemed after the cut-off (a non-interactive sign-in) is an incident too', async () => {
    const { result, alerts } = await firstCheckWith({
      appDisplayName: 'Microsoft Teams',
      clientAppUsed: 'Mobile Apps and Desktop clients',
      isInteractive: false,
      caeToken: true,
    });
    expect(result).toMatchObject({
      verdict: 'signin-after-cutoff',
      successesAfterCutoff: 1,
      signIns: [{ app: 'Microsoft Teams', interactive: false, caeToken: true }],
    });
    expect(alerts).toHaveLength(1);
  });

  it('an entry it cannot read (no status) closes the check "watch unavailable", never "no sign-in"', async () => {
    const { result, alerts } = await firstCheckWith({ withoutStatus: true });
    expect(result).toMatchObject({ verdict: 'unavailable', errorCode: 'UnreadableSignIns' });
    expect(alerts).toEqual([]);
  });

  it('one who does not sign in is closed as "watched: no sign-in"', async () => {
    const handler = createQueueHandler(() => runtime, 'employeeLeaving');
    const logs = capture();
    const { event, checks, cutoff } = await depart(handler, logs);
    await deliver(handler, logs, checks[0] as { message: OutgoingMessage }, cutoff + 60 * MIN);
    const stored = await latestRecordFor(runtime.audit, event.id as string);
    expect(stored?.signInWatch?.checks[0]?.result).toMatchObject({ verdict: 'no-sign-in' });
    expect(logs.lines.some((l) => l.text.startsWith('Sign-in watch check recorded'))).toBe(true);
    expect(logs.alerts()).toEqual([]);
  });

  it('no Entra ID P1/P2: the check is closed "watch unavailable", not retried, no alert', async () => {
    const handler = createQueueHandler(() => runtime, 'employeeLeaving');
    const logs = capture();
    const { event, checks, cutoff } = await depart(handler, logs);
    world.graph.setPremiumLicence(false);
    try {
      const before = scheduled.length;
      await deliver(handler, logs, checks[0] as { message: OutgoingMessage }, cutoff + 60 * MIN);
      expect(scheduled.length).toBe(before);
    } finally {
      world.graph.setPremiumLicence(true);
    }
    const stored = await latestRecordFor(runtime.audit, event.id as string);
    expect(stored?.signInWatch?.checks[0]?.result).toMatchObject({
      verdict: 'unavailable',
      errorCode: 'NoPremiumLicence',
    });
    expect(stored?.signInWatch?.checks[0]?.result?.note).toContain('P1 or P2');
  });

  it('throttled (429 with Retry-After): the check is parked for later, then completes', async () => {
    const handler = createQueueHandler(() => runtime, 'employeeLeaving');
    const logs = capture();
    const { event, checks, cutoff } = await depart(handler, logs);
    const fault = world.graph.injectFault({
      operation: 'listSignIns',
      status: 429,
      retryAfterSeconds: 300,
      times: 1,
    });
    const before = scheduled.length;
    await deliver(handler, logs, checks[0] as { message: OutgoingMessage }, cutoff + 60 * MIN);
    expect(fault.hits).toBe(1);
    const retry = scheduled.slice(before);
    expect(retry).toHaveLength(1);
    expect(retry[0]?.at.getTime()).toBeGreaterThanOrEqual(cutoff + 65 * MIN);
    expect(logs.lines.some((l) => l.text.startsWith('Sign-in watch check could not read'))).toBe(
      true,
    );
    await deliver(handler, logs, retry[0] as { message: OutgoingMessage }, cutoff + 66 * MIN);
    const stored = await latestRecordFor(runtime.audit, event.id as string);
    expect(stored?.signInWatch?.checks[0]).toMatchObject({
      retries: 1,
      result: { verdict: 'no-sign-in' },
    });
  });

  it('reinstated before the check: sign-ins after the reinstatement are not an incident', async () => {
    const handler = createQueueHandler(() => runtime, 'employeeLeaving');
    const logs = capture();
    const { leaver, event, checks, cutoff } = await depart(handler, logs);
    // HR rehires the person: the reinstatement re-enables the account through the real handler.
    const back = cloudEvent('employee.reinstated', { user: leaver.upn });
    await handler(back, logs.context());
    expect((await latestRecordFor(runtime.audit, back.id as string))?.outcome).toBe('succeeded');
    world.graph.addSignIn({
      userId: leaver.id,
      createdDateTime: new Date(cutoff + 30 * MIN).toISOString(),
    });
    await deliver(handler, logs, checks[0] as { message: OutgoingMessage }, cutoff + 60 * MIN);
    const result = (await latestRecordFor(runtime.audit, event.id as string))?.signInWatch
      ?.checks[0]?.result;
    expect(result).toMatchObject({ verdict: 'no-sign-in', window: { to: back.time } });
    expect(result?.note).toContain('reinstated');
    expect(logs.alerts()).toEqual([]);
  });

  it('a forged watch message (no planned check) is ignored', async () => {
    const handler = createQueueHandler(() => runtime, 'employeeLeaving');
    const logs = capture();
    const forged = {
      kind: 'offboarding.signin-watch',
      identityKey: 'e'.repeat(40),
      contentDigest: 'f'.repeat(40),
      check: 0,
    };
    await handler(forged, logs.context());
    expect(logs.lines.some((l) => l.text.startsWith('Sign-in watch message ignored'))).toBe(true);
  });
});

describe('the Graph adapter against the stand-in sign-in log', () => {
  it('pages through @odata.nextLink with the documented shape and filters', async () => {
    const user = world.newUser();
    const base = Date.now() - 60 * MIN;
    for (let i = 0; i < 5; i++)
      world.graph.addSignIn({
        userId: user.id,
        createdDateTime: new Date(base + i * MIN).toISOString(),
      });
    world.graph.addSignIn({
      userId: user.id,
      createdDateTime: new Date(base - 2 * MIN).toISOString(),
    });
    // $top is the adapter's (1,000): ask for a page of two through the link Graph would give.
    const real = await runtime.signInWatch.signIns.listSignIns(
      user.id,
      new Date(base).toISOString(),
      new Date(base + 10 * MIN).toISOString(),
    );
    expect(real.signIns).toHaveLength(5);
    expect(real.nextLink).toBeUndefined();
    expect(real.signIns.map((s) => s.createdDateTime)).toEqual(
      [...real.signIns.map((s) => s.createdDateTime)].sort().reverse(),
    );
    expect(real.signIns[0]).toMatchObject({
      errorCode: 0,
      isInteractive: true,
      clientAppUsed: 'Browser',
    });
    const request = world.graph.requests.filter((r) => r.operation === 'listSignIns').pop();
    expect(request?.query.$top).toBe('1000');
    // Beta (the default), asking for both kinds of user sign-in.
    expect(request?.path).toBe('/beta/auditLogs/signIns');
    expect(request?.query.$filter).toBe(
      `userId eq '${user.id}' and createdDateTime ge ${new Date(base).toISOString()} and createdDateTime le ${new Date(base + 10 * MIN).toISOString()} and signInEventTypes/any(t: t eq 'interactiveUser' or t eq 'nonInteractiveUser')`,
    );
    const small = `${world.graph.url}/beta/auditLogs/signIns?$filter=${encodeURIComponent(`userId eq '${user.id}'`)}&$top=2`;
    const seen: string[] = [];
    let page = await runtime.signInWatch.signIns.nextSignIns(small);
    seen.push(...page.signIns.map((s) => s.id));
    while (page.nextLink !== undefined) {
      page = await runtime.signInWatch.signIns.nextSignIns(page.nextLink);
      seen.push(...page.signIns.map((s) => s.id));
    }
    expect(new Set(seen).size).toBe(6);
  });

  it('follows a nextLink only to the sign-in log it reads', async () => {
    for (const link of [
      `${world.graph.url}/v1.0/users?$top=2`,
      `${world.graph.url}/v1.0/auditLogs/signIns?$top=2`,
      `https://graph.example.net/beta/auditLogs/signIns?$top=2`,
    ])
      await expect(runtime.signInWatch.signIns.nextSignIns(link)).rejects.toMatchObject({
        code: 'GraphUnavailable',
        retryable: false,
      });
  });

  it('beta states MFA and CAE and lists non-interactive sign-ins; v1.0 does neither (SIGNIN_LOG_GRAPH_VERSION)', async () => {
    const user = world.newUser();
    const at = (minutes: number) => new Date(Date.now() - minutes * MIN).toISOString();
    world.graph.addSignIn({
      userId: user.id,
      createdDateTime: at(3),
      authenticationRequirement: 'multiFactorAuthentication',
      caeToken: true,
    });
    world.graph.addSignIn({
      userId: user.id,
      createdDateTime: at(2),
      isInteractive: false,
      authenticationRequirement: 'singleFactorAuthentication',
      caeToken: false,
    });
    const read = (graph: GraphDirectory) => graph.listSignIns(user.id, at(10), at(0));
    const credential = new ManagedIdentityCredential();
    const beta = await read(runtime.signInWatch.signIns as GraphDirectory);
    expect(beta.signIns).toMatchObject([
      {
        isInteractive: false,
        authenticationRequirement: 'singleFactorAuthentication',
        caeToken: false,
      },
      {
        isInteractive: true,
        authenticationRequirement: 'multiFactorAuthentication',
        caeToken: true,
      },
    ]);

    const v1 = new GraphDirectory({
      config: { ...runtime.config.graph, signInLogVersion: 'v1.0' },
      credential,
    });
    const plain = await read(v1);
    const request = world.graph.requests.filter((r) => r.operation === 'listSignIns').pop();
    expect(request?.path).toBe('/v1.0/auditLogs/signIns');
    expect(request?.query.$filter).not.toContain('signInEventTypes');
    expect(plain.signIns).toHaveLength(1);
    expect(plain.signIns[0]).toMatchObject({ isInteractive: true });
    expect(plain.signIns[0]?.authenticationRequirement).toBeUndefined();
    expect(plain.signIns[0]?.caeToken).toBeUndefined();
  });

  it("a sign-in log answer's throttle usage never reaches the write budget (another service's limits)", async () => {
    const user = world.newUser();
    const reported: number[] = [];
    const graph = new GraphDirectory({
      config: runtime.config.graph,
      credential: new ManagedIdentityCredential(),
      onThrottleLimit: (used) => reported.push(used),
    });
    const usage = { 'x-ms-throttle-limit-percentage': '0.9' };
    world.graph.injectFault({ kind: 'header', operation: 'listSignIns', headers: usage });
    await graph.listSignIns(user.id, new Date(0).toISOString(), new Date().toISOString());
    expect(reported).toEqual([]);
    // The same header on a directory answer is heard.
    world.graph.injectFault({ kind: 'header', operation: 'getUser', headers: usage });
    await graph.getUser({ kind: 'objectId', value: user.id });
    expect(reported).toEqual([0.9]);
  });

  it('holds entries back for the ingestion delay, as Entra does', async () => {
    const user = world.newUser();
    world.graph.setSignInIngestionDelayMs(60_000);
    try {
      world.graph.addSignIn({ userId: user.id });
    } finally {
      world.graph.setSignInIngestionDelayMs(0);
    }
    const from = new Date(Date.now() - MIN).toISOString();
    const to = new Date(Date.now() + MIN).toISOString();
    expect((await runtime.signInWatch.signIns.listSignIns(user.id, from, to)).signIns).toEqual([]);
  });

  it('without AuditLog.Read.All: Forbidden, naming the permission', async () => {
    const user = world.newUser();
    // An identity of its own (tokens are cached per identity): granted User.Read.All only.
    const clientId = randomUUID();
    world.identity.setRoles(['User.Read.All'], clientId);
    {
      const graph = new GraphDirectory({
        config: runtime.config.graph,
        credential: new ManagedIdentityCredential({ clientId }),
      });
      await expect(
        graph.listSignIns(user.id, new Date(0).toISOString(), new Date().toISOString()),
      ).rejects.toMatchObject({
        code: 'Forbidden',
        message: expect.stringContaining('AuditLog.Read.All') as unknown,
      });
    }
  });
});
