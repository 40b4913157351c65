import { GraphDirectory } from '../../shared/adapters/graphDirectory';
import { loadConfig } from '../../shared/app/config';
import { createCredential } from '../../shared/app/runtime';
import { startWorld, type World } from '../support/world';

let world: World;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world.stop();
});

it('passes on the share of the write quota Graph says is used (x-ms-throttle-limit-percentage)', async () => {
  const config = loadConfig(world.env);
  const seen: number[] = [];
  const directory = new GraphDirectory({
    config: config.graph,
    credential: createCredential(config),
    onThrottleLimit: (used) => seen.push(used),
  });
  // A long window: the bucket must not refill while the nine writes run on a busy machine.
  world.graph.throttle({ writesPerWindow: 10, windowMs: 3_600_000, retryAfterSeconds: 5 });
  try {
    for (let i = 0; i < 9; i++) {
      const user = world.newUser();
      await directory.revokeSignInSessions(user.id);
    }
  } finally {
    world.graph.throttle(null);
  }
  // Graph sends the header from 80 % use: the 8th and 9th writes of 10.
  expect(seen.length).toBeGreaterThanOrEqual(2);
  expect(seen).toEqual([0.8, 0.9]);
});
