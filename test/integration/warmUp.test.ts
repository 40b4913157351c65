/**
 * The function app's warm-up (Runtime.warmUp, started by functions/index.ts under the host) with
 * the real SDKs against the stand-ins: it readies the final record's sinks without writing
 * anything, never fails, and a sink that cannot warm up still reports its trouble when a record
 * reaches it.
 */
import { OUTCOME_TOPIC, startWorld, type World } from '../support/world';

jest.setTimeout(60_000);

let world: World;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world.stop();
});

const outcomeSinkOf = (runtime: World['runtime']) => {
  const sink = runtime.finalSinks.find((s) => s.name === 'outcome topic');
  if (sink?.warmUp === undefined) throw new Error('the outcome topic sink has no warm-up');
  return sink as typeof sink & { warmUp: () => Promise<void> };
};

test('warming up opens the outcome topic link and writes nothing; the first call is the only one', async () => {
  const runtime = world.runtimeWith({});
  const accepted = world.serviceBus.topicStats(OUTCOME_TOPIC).accepted;
  const warming = runtime.warmUp();
  expect(runtime.warmUp()).toBe(warming);
  await expect(warming).resolves.toBeUndefined();
  // The sink's own warm-up talks to the broker: it succeeds for the topic that exists...
  await expect(outcomeSinkOf(runtime).warmUp()).resolves.toBeUndefined();
  expect(world.serviceBus.topicStats(OUTCOME_TOPIC).accepted).toBe(accepted);
});

test('a sink that cannot warm up does not fail the warm-up', async () => {
  const runtime = world.runtimeWith({ OUTCOME_TOPIC: 'no-such-topic' });
  await expect(runtime.warmUp()).resolves.toBeUndefined();
  // ...and fails for one that does not, as the first record's publish will, and says so then.
  await expect(outcomeSinkOf(runtime).warmUp()).rejects.toThrow(/no-such-topic/);
});
