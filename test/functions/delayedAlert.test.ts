/**
 * The "departure delayed" alert (infra/modules/alerts.bicep) counts one log line: the function
 * handler writes it once per departure, on the run that finds the departure past its due time by
 * DEPARTURE_OVERDUE_MINUTES and still failing transiently. Handlers run with a real
 * InvocationContext against the Graph and Service Bus stand-ins; the leave date an hour ago makes
 * the departure overdue on its first run.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { format } from 'node:util';
import { InvocationContext } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { DEPARTURE_DELAYED, createQueueHandler } from '../../shared/adapters/functionHandler';
import { latestRecordFor } from '../../shared/core/auditRecords';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world.stop();
});

const HOUR = 3_600_000;
const contract = JSON.parse(
  readFileSync(join(__dirname, '..', '..', 'infra', 'contract.json'), 'utf8'),
) as { logs: { departureDelayed: string } };

/** Every line the handler logs, as the Functions worker formats it for Application Insights. */
function capture() {
  const lines: { level: string; text: string }[] = [];
  const context = () =>
    new InvocationContext({
      invocationId: randomUUID(),
      functionName: 'employeeLeaving',
      triggerMetadata: { messageId: randomUUID(), deliveryCount: 1, applicationProperties: {} },
      logHandler: (level, ...args) => lines.push({ level, text: format(...args) }),
    });
  const delayedLines = () => lines.filter((l) => l.text.startsWith(DEPARTURE_DELAYED));
  return { lines, context, delayedLines };
}

const departure = (upn: string, effectiveAt: string) =>
  cloudEvent('employee.leaving', { user: upn, effectiveAt, ticket: 'HR-DELAYED' });

describe('the departure-delayed log line', () => {
  it('is the line the alert queries (contract.logs.departureDelayed)', () => {
    expect(contract.logs.departureDelayed).toBe(DEPARTURE_DELAYED);
  });

  it('is logged exactly once for a departure that stays delayed, then completes', async () => {
    const leaver = world.newUser();
    const handler = createQueueHandler(() => world.runtime, 'employeeLeaving');
    const { lines, context, delayedLines } = capture();
    const event = departure(leaver.upn, new Date(Date.now() - HOUR).toISOString());
    // Every write fails; reads work, so the user resolves and the line can name the object id.
    // (No revocation goes through before the end: Graph keeps its time in whole seconds, and two
    // revocations within one second could not be told apart.)
    const outage = (['patch', 'revoke'] as const).map((operation) =>
      world.graph.injectFault({ operation, userKey: leaver.id, status: 503, times: Infinity }),
    );

    // Graph failing: the first run marks it delayed, the retries that follow keep it delayed.
    for (let attempt = 0; attempt < 3; attempt++) await handler(event, context());
    const delayed = await latestRecordFor(world.runtime.audit, event.id as string);
    expect(delayed).toMatchObject({ outcome: 'delayed', attempts: 3 });
    expect(delayedLines()).toHaveLength(1);

    // Graph back: the next retry completes it; nothing more is logged as delayed.
    for (const fault of outage) fault.remove();
    await handler(event, context());
    expect(await latestRecordFor(world.runtime.audit, event.id as string)).toMatchObject({
      outcome: 'succeeded',
      delayedAt: delayed?.delayedAt,
    });
    expect(delayedLines()).toHaveLength(1);

    const [line] = delayedLines();
    expect(line?.level).toBe('warning');
    // The fields an alert and an operator need, as the worker prints them (util.format).
    for (const field of [
      `eventId: '${event.id as string}'`,
      "source: '/hr/workday'",
      `objectId: '${leaver.id}'`,
      `dueAt: '${(event.data as { effectiveAt: string }).effectiveAt}'`,
      `delayedSince: '${delayed?.delayedAt ?? ''}'`,
      "errorCode: 'GraphUnavailable'",
    ])
      expect(line?.text).toContain(field);
    // Ids and times only: the UPN and the ticket stay in the audit table.
    expect(line?.text).not.toContain(leaver.upn);
    expect(line?.text).not.toContain('HR-DELAYED');
    // The run still logs its usual retry line next to it.
    expect(lines.filter((l) => l.text.startsWith('Event failed transiently'))).toHaveLength(3);
  });

  it('is not logged for a departure that fails transiently within its due time', async () => {
    const leaver = world.newUser();
    const handler = createQueueHandler(() => world.runtime, 'employeeLeaving');
    const { lines, context, delayedLines } = capture();
    const event = cloudEvent('employee.leaving', { user: leaver.upn });
    world.graph.injectFault({ operation: 'any', userKey: leaver.id, status: 503, times: Infinity });

    await handler(event, context());
    expect(await latestRecordFor(world.runtime.audit, event.id as string)).toMatchObject({
      outcome: 'failed',
      retryable: true,
    });
    expect(lines.some((l) => l.text.startsWith('Event failed transiently'))).toBe(true);
    expect(delayedLines()).toEqual([]);
  });
});
