import { TableClient } from '@azure/data-tables';
import { latestRecordFor } from '../../shared/auditRecords';
import { BREAKGLASS_ID, BREAKGLASS_UPN } from '../../dev/graph-standin';
import type { AuditRecord } from '../../shared/ports';
import type { Runtime } from '../../shared/runtime';
import { startPipeline, type Pipeline } from '../support/runner';
import { startTcpProxy, type TcpProxy } from '../support/tcpProxy';
import { waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let proxy: TcpProxy;
let runtime: Runtime;
let pipeline: Pipeline;

beforeAll(async () => {
  // Tokens under 300 s are not cached, so a token endpoint outage is felt at once.
  world = await startWorld(
    { RETRY_MAX_ATTEMPTS: '20', RETRY_BASE_DELAY_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '2' },
    { tokenLifetimeSeconds: 120 },
  );
  // The audit store behind a proxy that can fail: a real outage, not a mock.
  const azuritePort = Number(
    /TableEndpoint=http:\/\/127\.0\.0\.1:(\d+)/.exec(world.env.AUDIT_TABLE_CONNECTION_STRING!)?.[1],
  );
  proxy = await startTcpProxy(azuritePort);
  runtime = world.runtimeWith({
    AUDIT_TABLE_CONNECTION_STRING: world.env.AUDIT_TABLE_CONNECTION_STRING!.replace(
      `127.0.0.1:${azuritePort}`,
      `127.0.0.1:${proxy.port}`,
    ),
  });
  pipeline = startPipeline(world, runtime, 8);
});
afterAll(async () => {
  await pipeline.stop();
  await proxy.stop();
  await world.stop();
});

async function allRecords(): Promise<Array<Record<string, unknown>>> {
  const table = TableClient.fromConnectionString(
    world.env.AUDIT_TABLE_CONNECTION_STRING!,
    world.env.AUDIT_TABLE_NAME!,
    {
      allowInsecureConnection: true,
    },
  );
  const entities: Array<Record<string, unknown>> = [];
  for await (const entity of table.listEntities()) entities.push(entity);
  return entities;
}

it('converges to one final record when the process loses the audit write after the Graph write', async () => {
  const user = world.graph.addUser({
    id: 'c4a5e000-0000-4000-8000-0000000000c1',
    userPrincipalName: 'crash.test@contoso.com',
  });
  world.graph.injectFault({ kind: 'delay', operation: 'revoke', ms: 300, userKey: user.id });
  const event = cloudEvent('mfa.enabled', { user: user.userPrincipalName });
  await pipeline.send('mfa-enabled', event);
  // The revoke has reached Graph: take the audit store away before the record is written.
  await waitFor('the revoke to reach Graph', () =>
    world.graph.requests.some((r) => r.operation === 'revoke' && r.userId === user.id),
  );
  proxy.setDown(true);
  await new Promise((resolve) => setTimeout(resolve, 8000));
  proxy.setDown(false);

  const record = await waitFor(
    'the event to succeed',
    async () => {
      const r = await latestRecordFor(runtime.audit, event.id as string);
      return r?.outcome === 'succeeded' ? r : undefined;
    },
    60_000,
  ).catch(async (e) => {
    console.log(
      'DEBUG',
      JSON.stringify(await runtime.audit.findByEventId(event.id as string), null, 1),
      pipeline.logs.map((l) => l.text).join('\n'),
    );
    throw e;
  });
  const revokes = world.graph
    .writes()
    .filter((r) => r.operation === 'revoke' && r.userId === user.id);
  expect(revokes.length).toBeGreaterThanOrEqual(2); // the lost attempt really wrote to Graph
  expect(record.attempts).toBeGreaterThanOrEqual(2);
  expect((await allRecords()).filter((e) => e.eventId === event.id)).toHaveLength(1);
}, 90_000);

it('ends 1,000 events under injected faults succeeded or dead-lettered with a reason, one record each', async () => {
  const started = Date.now();
  const users = Array.from({ length: 1000 }, (_, i) => {
    const suffix = String(i).padStart(12, '0');
    return world.graph.addUser({
      id: `f0000000-0000-4000-8000-${suffix}`,
      userPrincipalName: `fault.user${i}@contoso.com`,
    });
  });
  type Kind = 'valid' | 'invalid' | 'protected' | 'unknown';
  const plan = users.map((user, i) => {
    const kind: Kind =
      i % 20 === 0 ? 'invalid' : i % 20 === 1 ? 'protected' : i % 20 === 2 ? 'unknown' : 'valid';
    const leaving = i % 2 === 0;
    const subject =
      kind === 'invalid'
        ? `fault user ${i}`
        : kind === 'protected'
          ? BREAKGLASS_UPN
          : kind === 'unknown'
            ? `gone${i}@contoso.com`
            : user.userPrincipalName;
    const event = leaving
      ? cloudEvent('employee.leaving', { user: subject, resetPassword: i % 5 === 0 }, `fault-${i}`)
      : cloudEvent('mfa.enabled', { user: subject }, `fault-${i}`);
    return {
      kind,
      event,
      queue: leaving ? ('employee-leaving' as const) : ('mfa-enabled' as const),
    };
  });
  const expectedDeadLetters = plan.filter((p) => p.kind !== 'valid').length;

  // Faults: a Graph write quota storm, 5xx bursts, dropped connections, a token endpoint outage
  // and an audit store outage, while duplicates of some events arrive with new message ids.
  world.graph.throttle({ writesPerWindow: 20, windowMs: 1000, retryAfterSeconds: 1 });
  const burst503 = world.graph.injectFault({ status: 503, times: 60 });
  const resets = world.graph.injectFault({ kind: 'reset', times: 25 });
  // Outages while the events are being processed: the token endpoint, then the audit store.
  const outages = [
    setTimeout(() => world.identity.setDown(true), 1500),
    setTimeout(() => world.identity.setDown(false), 3500),
    setTimeout(() => proxy.setDown(true), 5000),
    setTimeout(() => proxy.setDown(false), 15_000),
  ];
  let duplicatesSent = 0;
  for (const [i, item] of plan.entries()) {
    await pipeline.send(item.queue, item.event, `m-${i}`);
    if (item.kind === 'valid' && i % 25 === 3) {
      await pipeline.send(item.queue, item.event, `m-${i}-again`);
      duplicatesSent++;
    }
  }
  const burst500 = world.graph.injectFault({ status: 500, times: 40 });

  const dlqCount = () =>
    world.serviceBus.stats('employee-leaving').deadLettered +
    world.serviceBus.stats('mfa-enabled').deadLettered;
  let records: Array<AuditRecord | undefined> = [];
  await waitFor(
    'every event to reach its end',
    async () => {
      if (dlqCount() < expectedDeadLetters) return false;
      records = await Promise.all(
        plan.map((p) => latestRecordFor(world.runtime.audit, p.event.id as string)),
      );
      return records.every((r, i) =>
        plan[i]?.kind === 'valid' ? r?.outcome === 'succeeded' : r !== undefined,
      );
    },
    300_000,
  );
  outages.forEach(clearTimeout);
  proxy.setDown(false);
  world.identity.setDown(false);

  // Every event ended succeeded, or in the dead-letter queue with a reason and an audited error.
  const deadLetters = [
    ...world.serviceBus.deadLetters('employee-leaving'),
    ...world.serviceBus.deadLetters('mfa-enabled'),
  ];
  const deadLetteredIds = new Set(deadLetters.map((d) => (d.body as { id?: string }).id));
  let lost = 0;
  for (const [i, item] of plan.entries()) {
    const record = records[i];
    if (item.kind === 'valid') {
      if (record?.outcome !== 'succeeded') lost++;
    } else {
      if (!deadLetteredIds.has(item.event.id as string) || record?.errorCode === undefined) lost++;
      expect(record?.outcome).toBe(item.kind === 'protected' ? 'refused' : 'failed');
    }
  }
  expect(lost).toBe(0);
  expect(deadLetters).toHaveLength(expectedDeadLetters);
  for (const deadLetter of deadLetters) expect(deadLetter.reason).toBe('MaxDeliveryCountExceeded');

  // Exactly one final audit record per event id.
  const entities = (await allRecords()).filter((e) => String(e.eventId).startsWith('fault-'));
  const perEvent = new Map<string, number>();
  for (const entity of entities)
    perEvent.set(String(entity.eventId), (perEvent.get(String(entity.eventId)) ?? 0) + 1);
  expect(perEvent.size).toBe(plan.length);
  expect([...perEvent.values()].every((n) => n === 1)).toBe(true);

  // No Graph write for a refused or invalid event; unknown users were only read.
  const writes = world.graph.writes();
  expect(writes.filter((w) => w.userId === BREAKGLASS_ID)).toHaveLength(0);
  expect(world.graph.requests.filter((r) => r.decodedPath.includes('fault user'))).toHaveLength(0);
  expect(writes.filter((w) => w.decodedPath.includes('/gone'))).toHaveLength(0);

  const faulted = world.graph.requests.filter((r) => r.fault !== undefined);
  const figures = {
    events: plan.length,
    duplicateDeliveries: duplicatesSent,
    graphRequests: world.graph.requests.length,
    throttled429: faulted.filter((r) => r.fault === 'throttle').length,
    injected5xx: burst503.hits + burst500.hits,
    connectionResets: resets.hits,
    tokenEndpointFailures: world.identity.requests.filter((r) => r.status >= 500).length,
    auditOutageRetries: pipeline.logs.filter((l) => l.text.includes('AuditUnavailable')).length,
    succeeded: records.filter((r) => r?.outcome === 'succeeded').length,
    deadLettered: deadLetters.length,
    lost,
    duplicateRecords: entities.length - perEvent.size,
    maxAttempts: Math.max(...records.map((r) => r?.attempts ?? 0)),
    seconds: Math.round((Date.now() - started) / 1000),
  };
  // The figures the README and closing note quote.
  console.log(`fault run: ${JSON.stringify(figures)}`);
  expect(figures.throttled429).toBeGreaterThan(0);
  expect(figures.tokenEndpointFailures).toBeGreaterThan(0);
  expect(figures.auditOutageRetries).toBeGreaterThan(0);
}, 400_000);
