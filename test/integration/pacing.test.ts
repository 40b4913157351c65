import { latestRecordFor } from '../../shared/core/auditRecords';
import { startPipeline, type Pipeline } from '../support/runner';
import { waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

/**
 * The runtime's pacer, wired as in Azure (shared budget in the audit table, 429 feedback), against
 * a Graph stand-in that enforces a 20 writes/s quota: a wave and departures in the middle of it
 * finish without Graph having to throttle. Figures under realistic load are the benchmark's job
 * (npm run bench); this checks the wiring and the outcome, not the speed.
 */
let world: World;
let pipeline: Pipeline;

beforeAll(async () => {
  world = await startWorld({
    PACING_WRITES_PER_SECOND: '20',
    PACING_BURST_WRITES: '30',
    PACING_DEPARTURE_RESERVE_WRITES: '10',
    PACING_MAX_WAIT_SECONDS: '5',
  });
  pipeline = startPipeline(world, world.runtime, 8);
});
afterAll(async () => {
  await pipeline.stop();
  await world.stop();
});

it('paces a wave to the write quota with departures first: every event done, no 429 from Graph', async () => {
  world.graph.throttle({ writesPerWindow: 30, windowMs: 1500, retryAfterSeconds: 5 });
  const wave = Array.from({ length: 120 }, () => {
    const user = world.newUser();
    return cloudEvent('mfa.enabled', { user: user.upn });
  });
  const departures = Array.from({ length: 4 }, () => {
    const user = world.newUser();
    return cloudEvent('employee.leaving', { user: user.upn });
  });
  for (const [i, event] of wave.entries()) {
    await pipeline.send('mfa-enabled', event);
    if (i % 30 === 15) await pipeline.send('employee-leaving', departures[i / 30 - 0.5]);
  }
  const all = [...wave, ...departures];
  await waitFor(
    'every event to succeed',
    async () => {
      const records = await Promise.all(
        all.map((e) => latestRecordFor(world.runtime.audit, e.id as string)),
      );
      return records.every((r) => r?.outcome === 'succeeded');
    },
    120_000,
  );
  const throttled = world.graph.requests.filter((r) => r.fault === 'throttle').length;
  expect(throttled).toBe(0);
  expect(world.serviceBus.stats('mfa-enabled').deadLettered).toBe(0);
}, 150_000);
