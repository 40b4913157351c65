/**
 * Model-based test of a person's lifecycle across events: random interleavings, per person, of
 * departures (now or at a date), cancellations, reinstatements and MFA events with out-of-order
 * times, deliveries in any order, redeliveries, dead letters and replays, runs by hand, 429 storms,
 * audit outages (a run that wrote and could not record it: a crash between two steps) and changes
 * made outside the app. After quiescence the invariants below must hold. fast-check prints the
 * seed and the shrunk sequence of a failure; keep it in REGRESSIONS so it runs on every CI run.
 */
import fc from 'fast-check';
import { WRITE_OPERATIONS, graphErrors } from '../support/fakes';
import { isFinal } from '../../shared/core/lifecycle';
import { isLater, type Intent, type IntentKind } from '../../shared/core/timeline';
import type { AuditRecord } from '../../shared/core/ports';
import type { RouteName } from '../../shared/core/routes';
import { decideHeld } from '../../shared/core/guardrailOps';
import { QUEUES, SOURCE, makeCore, type Core } from './harness';

const PEOPLE = ['alice', 'bob', 'vault'] as const;
type Person = (typeof PEOPLE)[number];
const BASE_TIME = Date.parse('2026-11-30T08:00:00Z');
const MAX_DELIVERIES = 10; // Service Bus MaxDeliveryCount: then the dead-letter queue.

type Step =
  | { t: 'leave'; p: Person; disable: boolean; later: boolean; skew: number }
  | { t: 'cancel'; p: Person; skew: number }
  | { t: 'reinstate'; p: Person; skew: number }
  | { t: 'mfa'; p: Person }
  | { t: 'deliver'; i: number }
  | { t: 'redeliver'; i: number }
  | { t: 'tick'; minutes: number }
  | { t: 'storm'; writes: number }
  | { t: 'forbidRead'; p: Person }
  | { t: 'auditDown'; writes: number; skip: number }
  | { t: 'replay'; i: number }
  | { t: 'byHand'; i: number }
  | { t: 'adminFlip'; p: Person }
  | { t: 'release' }
  | { t: 'discard' };

const person = fc.constantFrom(...PEOPLE);
const skew = fc.integer({ min: -1, max: 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('leave' as const),
      p: person,
      disable: fc.boolean(),
      later: fc.boolean(),
      skew,
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('cancel' as const), p: person, skew }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('reinstate' as const), p: person, skew }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('mfa' as const), p: person }) },
  { weight: 6, arbitrary: fc.record({ t: fc.constant('deliver' as const), i: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('redeliver' as const), i: fc.nat(20) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('tick' as const),
      minutes: fc.integer({ min: 1, max: 3 * 24 * 60 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('storm' as const),
      writes: fc.integer({ min: 1, max: 30 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('forbidRead' as const), p: person }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('auditDown' as const),
      writes: fc.integer({ min: 1, max: 3 }),
      skip: fc.nat(3),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('replay' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('byHand' as const), i: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('adminFlip' as const), p: person }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('release' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('discard' as const) }) },
);

interface Sent {
  id: string;
  person: Person;
  kind: IntentKind | 'mfa';
  disable: boolean;
  time: string;
  body: Record<string, unknown>;
  route: RouteName;
}

interface Message {
  route: RouteName;
  body: unknown;
  messageId: string;
  properties?: Record<string, unknown>;
  deliveries: number;
}

interface Write {
  step: number;
  eventId: string;
  person: string;
  operation: string;
}

/** The world the steps act on: the core, the queues, and what the model saw. */
class World {
  readonly core: Core = makeCore({
    retry: { maxAttempts: 3, baseDelaySeconds: 10, maxDelaySeconds: 300 },
    // Low enough that sequences trip it: held events, releases and discards are in the story.
    guardrail: {
      employeeLeaving: { maxPerWindow: 1, windowMinutes: 24 * 60 },
      employeeReinstated: { maxPerWindow: 1, windowMinutes: 24 * 60 },
    },
  });
  readonly sent: Sent[] = [];
  readonly bus: Message[] = [];
  readonly deadLetters: Message[] = [];
  readonly writes: Write[] = [];
  /** Per intent ref: the step at which it was first on the person's timeline. */
  readonly admittedAt = new Map<string, { step: number; intent: Intent; person: string }>();
  /** Per person id: the step of the last change made outside the app. */
  readonly outsideAt = new Map<string, number>();
  step = 0;
  private seq = 0;

  userOf(p: Person) {
    return this.core.users[p];
  }

  send(
    s: Exclude<
      Step,
      {
        t:
          | 'deliver'
          | 'redeliver'
          | 'tick'
          | 'storm'
          | 'forbidRead'
          | 'auditDown'
          | 'replay'
          | 'byHand'
          | 'adminFlip'
          | 'release'
          | 'discard';
      }
    >,
  ): void {
    this.seq += 1;
    const id = `e${this.seq}-${s.t}-${s.p}`;
    const time = new Date(
      BASE_TIME + this.seq * 60_000 + ('skew' in s ? s.skew * 90_000 : 0),
    ).toISOString();
    const type = {
      leave: 'com.contoso.hr.employee.leaving',
      cancel: 'com.contoso.hr.employee.leaving.cancelled',
      reinstate: 'com.contoso.hr.employee.reinstated',
      mfa: 'com.contoso.mfa.enabled',
    }[s.t];
    const user = this.userOf(s.p).userPrincipalName;
    const data: Record<string, unknown> = { user };
    if (s.t === 'leave') {
      data.disableAccount = s.disable;
      if (s.later)
        data.effectiveAt = new Date(this.core.clock.now().getTime() + 2 * 86_400_000).toISOString();
    }
    const body = {
      specversion: '1.0',
      id,
      source: SOURCE,
      type,
      time,
      datacontenttype: 'application/json',
      data,
    };
    const route: RouteName = s.t === 'mfa' ? 'mfaEnabled' : 'employeeLeaving';
    this.sent.push({
      id,
      person: s.p,
      kind: s.t === 'mfa' ? 'mfa' : s.t,
      disable: s.t === 'leave' && s.disable,
      time,
      body,
      route,
    });
    this.bus.push({ route, body, messageId: `m-${id}`, deliveries: 0 });
  }

  async deliver(index: number, keep = false): Promise<void> {
    if (this.bus.length === 0) return;
    const i = index % this.bus.length;
    const message = this.bus[i]!;
    message.deliveries += 1;
    const before = this.core.directory.calls.length;
    let settlement: 'complete' | 'abandon' | 'throw';
    let disposition: string | undefined;
    try {
      const outcome = await this.core.handle(message.route, {
        body: structuredClone(message.body),
        messageId: message.messageId,
        ...(message.properties === undefined ? {} : { properties: message.properties }),
      });
      settlement = outcome.settlement;
      disposition = outcome.result.disposition;
    } catch {
      settlement = 'throw';
    }
    this.noteWrites(before, (message.body as { id?: string }).id ?? '');
    this.noteAdmissions();
    if (keep) return;
    if (settlement === 'complete') this.bus.splice(i, 1);
    else if (disposition === 'reject' || message.deliveries >= MAX_DELIVERIES) {
      this.bus.splice(i, 1);
      this.deadLetters.push(message);
    }
  }

  /** `offboard process`: the event run by hand (no delayed retry). */
  async byHand(index: number): Promise<void> {
    if (this.sent.length === 0) return;
    const sent = this.sent[index % this.sent.length]!;
    const before = this.core.directory.calls.length;
    try {
      await this.core.process({
        body: structuredClone(sent.body),
        route: 'command',
        messageId: `hand-${this.step}`,
      });
    } catch {
      // A run by hand that fails says so to the operator; the model only checks what it wrote.
    }
    this.noteWrites(before, sent.id);
    this.noteAdmissions();
  }

  replay(index: number): void {
    if (this.deadLetters.length === 0) return;
    const [message] = this.deadLetters.splice(index % this.deadLetters.length, 1);
    this.bus.push({
      ...message!,
      messageId: `replay-${this.step}-${message!.messageId}`,
      deliveries: 0,
    });
  }

  tick(minutes: number): void {
    this.core.clock.advance(minutes * 60_000);
    this.enqueueDue();
  }

  /** Scheduled messages whose time has come are on their queue. */
  enqueueDue(): void {
    const now = this.core.clock.now().getTime();
    for (const entry of this.core.scheduler.pending()) {
      if (entry.at.getTime() > now) continue;
      const route: RouteName = entry.queue === QUEUES.mfaEnabled ? 'mfaEnabled' : 'employeeLeaving';
      this.bus.push({ route, ...this.core.scheduler.take(entry), deliveries: 0 });
    }
  }

  /** `offboard guardrail release|discard`: the held events come back through their queue. */
  async decide(kind: 'release' | 'discard'): Promise<void> {
    for (const route of ['employeeLeaving', 'employeeReinstated', 'mfaEnabled'] as const) {
      await decideHeld(
        {
          audit: this.core.audit,
          store: this.core.guardrailStore,
          scheduler: this.core.scheduler,
          queues: QUEUES,
          now: this.core.clock.now,
        },
        kind,
        { route, by: 'ops.model', reason: 'model', enqueueAt: () => this.core.clock.now() },
      ).catch(() => undefined);
    }
    this.enqueueDue();
  }

  adminFlip(p: Person): void {
    const user = this.core.directory.user(this.userOf(p).id);
    user.accountEnabled = !user.accountEnabled;
    this.outsideAt.set(user.id.toLowerCase(), this.step);
  }

  private noteWrites(from: number, eventId: string): void {
    for (const call of this.core.directory.calls.slice(from)) {
      if (call.result !== 'ok' || !WRITE_OPERATIONS.includes(call.operation)) continue;
      this.writes.push({
        step: this.step,
        eventId,
        person: call.target.toLowerCase(),
        operation: call.operation,
      });
    }
  }

  private noteAdmissions(): void {
    for (const p of PEOPLE) {
      const id = this.userOf(p).id.toLowerCase();
      for (const intent of this.core.timelines.of(id)?.intents ?? []) {
        if (!this.admittedAt.has(intent.ref))
          this.admittedAt.set(intent.ref, { step: this.step, intent, person: id });
      }
    }
  }

  /** Everything delivered until nothing is left on the queues or scheduled. */
  async drain(): Promise<void> {
    for (let guard = 0; guard < 3_000; guard++) {
      this.step += 1;
      if (this.bus.length > 0) {
        await this.deliver(0);
        continue;
      }
      const next = this.core.scheduler.pending().sort((a, b) => a.at.getTime() - b.at.getTime())[0];
      if (next === undefined) return;
      this.core.clock.set(new Date(Math.max(next.at.getTime(), this.core.clock.now().getTime())));
      this.enqueueDue();
    }
    throw new Error('The queues did not drain in 3,000 steps.');
  }

  recordsOf(eventId: string): AuditRecord[] {
    return this.core.audit.all().filter((r) => r.eventId === eventId);
  }
}

async function run(steps: Step[]): Promise<void> {
  const world = new World();
  for (const s of steps) {
    world.step += 1;
    switch (s.t) {
      case 'leave':
      case 'cancel':
      case 'reinstate':
      case 'mfa':
        world.send(s);
        break;
      case 'deliver':
        await world.deliver(s.i);
        break;
      case 'redeliver':
        await world.deliver(s.i, true);
        break;
      case 'tick':
        world.tick(s.minutes);
        break;
      case 'storm':
        for (const operation of WRITE_OPERATIONS)
          world.core.directory.failNext(operation, () => graphErrors.throttled(30), {
            times: s.writes,
          });
        break;
      case 'forbidRead':
        world.core.directory.failNext('getUser', () => graphErrors.forbidden(), {
          user: world.userOf(s.p).userPrincipalName,
          times: 1,
        });
        break;
      case 'auditDown':
        world.core.audit.fail('write', s.writes, s.skip);
        break;
      case 'replay':
        world.replay(s.i);
        break;
      case 'byHand':
        await world.byHand(s.i);
        break;
      case 'adminFlip':
        world.adminFlip(s.p);
        break;
      case 'release':
      case 'discard':
        await world.decide(s.t);
        break;
    }
  }
  // Quiescence: faults end, every dead letter is replayed once (what ops would do), all drains.
  await world.drain();
  while (world.deadLetters.length > 0) world.replay(0);
  await world.drain();
  // Every held event released: a release is one more path that brings an old event back.
  await world.decide('release');
  await world.drain();
  for (const record of world.core.audit.all())
    REACHED.set(record.outcome, (REACHED.get(record.outcome) ?? 0) + 1);
  for (const [mark, seen] of [
    ['delayed', (r: AuditRecord) => r.delayedAt !== undefined],
    ['held', (r: AuditRecord) => r.guardrail?.heldAt !== undefined],
  ] as const)
    if (world.core.audit.all().some(seen)) REACHED.set(mark, (REACHED.get(mark) ?? 0) + 1);
  try {
    checkInvariants(world);
  } catch (error) {
    if (process.env.MODEL_DEBUG)
      console.log(
        JSON.stringify({ records: world.core.audit.all(), writes: world.writes }, null, 1),
      );
    throw error;
  }
}

function checkInvariants(world: World): void {
  const { core } = world;
  const refOf = (r: AuditRecord) => `${r.identityKey}/${r.contentDigest}`;

  for (const sent of world.sent) {
    const records = world.recordsOf(sent.id);
    // One record per event; nothing lost: it ended (final) or waits in the dead-letter queue.
    expect(records).toHaveLength(1);
    const record = records[0]!;
    const deadLettered = world.deadLetters.some((m) => (m.body as { id?: string }).id === sent.id);
    if (!isFinal(record))
      expect({ id: sent.id, outcome: record.outcome, deadLettered }).toMatchObject({
        deadLettered: true,
      });

    // The record agrees with what Graph saw: every write it claims was made for it, and every
    // write made for it is on it (done, or failed/unknown: never "not attempted").
    const wrote = new Set(
      world.writes.filter((w) => w.eventId === sent.id).map((w) => w.operation),
    );
    const claimed = record.actions.filter((a) => a.status === 'succeeded').map((a) => a.action);
    const touched = new Set(
      record.actions
        .filter((a) => a.status === 'succeeded' || a.status === 'failed')
        .map((a) => a.action as string),
    );
    const unwritten = claimed.filter((action) => !wrote.has(action));
    const untold = [...wrote].filter((operation) => !touched.has(operation));
    expect({ id: sent.id, outcome: record.outcome, unwritten, untold }).toEqual({
      id: sent.id,
      outcome: record.outcome,
      unwritten: [],
      untold: [],
    });
    if (['cancelled', 'refused', 'held', 'discarded', 'dry-run'].includes(record.outcome))
      expect({ id: sent.id, wrote: [...wrote] }).toEqual({ id: sent.id, wrote: [] });
  }

  // Protected accounts are never written to.
  const vault = core.users.vault.id.toLowerCase();
  expect(world.writes.filter((w) => w.person === vault)).toEqual([]);

  // No write after a later HR intent of the same person was on the timeline.
  const byRef = new Map(core.audit.all().map((r) => [r.eventId, refOf(r)]));
  for (const write of world.writes) {
    const ref = byRef.get(write.eventId);
    const own = ref === undefined ? undefined : world.admittedAt.get(ref);
    if (own === undefined) continue; // MFA: not part of the HR story.
    for (const [, other] of world.admittedAt) {
      if (other.person !== write.person || other.step >= write.step) continue;
      if (isLater(other.intent, own.intent))
        throw new Error(
          `Step ${write.step}: ${write.eventId} wrote ${write.operation} after the later intent ${other.intent.eventId} (${other.intent.kind}) was on the timeline at step ${other.step}.`,
        );
    }
  }

  // The account's state follows the person's latest HR intent, or the latest's record says why not.
  for (const p of ['alice', 'bob'] as const) {
    const user = core.directory.user(core.users[p].id);
    const hr = world.sent.filter((s) => s.person === p && s.kind !== 'mfa');
    const intents = hr.map((s) => ({
      s,
      intent: { ref: s.id, eventId: s.id, source: SOURCE, kind: s.kind as IntentKind, at: s.time },
    }));
    const latest = intents.reduce<(typeof intents)[number] | undefined>(
      (found, x) => (found === undefined || isLater(x.intent, found.intent) ? x : found),
      undefined,
    );
    if (latest === undefined) continue;
    const lastAppWrite = Math.max(
      -1,
      ...world.writes
        .filter((w) => w.person === user.id.toLowerCase() && /able/.test(w.operation))
        .map((w) => w.step),
    );
    if ((world.outsideAt.get(user.id.toLowerCase()) ?? -2) > lastAppWrite) continue; // someone else acted last
    const record = world.recordsOf(latest.s.id)[0]!;
    const story = {
      latest: latest.s.id,
      kind: latest.s.kind,
      accountEnabled: user.accountEnabled,
      outcome: record.outcome,
      errorCode: record.errorCode,
    };
    if (latest.s.kind === 'leave' && latest.s.disable && record.outcome === 'succeeded')
      expect(story).toMatchObject({ accountEnabled: false });
    if (latest.s.kind === 'reinstate' && record.outcome === 'succeeded')
      expect(story).toMatchObject({ accountEnabled: true });
    if (latest.s.kind === 'cancel' && !user.accountEnabled && lastAppWrite >= 0)
      // The account stays disabled only when the cancellation's record says why: a departure ran
      // before it could stop it (DepartureAlreadyExecuted), or it failed for good (e.g. Forbidden).
      expect({ ...story, explained: typeof story.errorCode === 'string' }).toMatchObject({
        outcome: 'failed',
        explained: true,
      });
    if (latest.s.kind === 'leave' && latest.s.disable && user.accountEnabled)
      expect(record.outcome).not.toBe('succeeded');
  }
}

/**
 * Failing sequences found so far (fast-check prints the shrunk counterexample), replayed as they
 * are on every run: a seed and path would stop replaying when the generator changes.
 */
const REGRESSIONS: Step[][] = [
  // A cancellation that called off one departure while another had already disabled the account.
  [
    { t: 'leave', p: 'alice', disable: false, later: true, skew: 0 },
    { t: 'leave', p: 'alice', disable: true, later: false, skew: 0 },
    { t: 'cancel', p: 'alice', skew: 0 },
    { t: 'cancel', p: 'bob', skew: 0 },
  ],
  // A run that wrote and lost its audit write, then superseded: its write must stay on the record.
  [
    { t: 'leave', p: 'alice', disable: false, later: false, skew: 0 },
    { t: 'auditDown', writes: 1, skip: 1 },
    { t: 'deliver', i: 0 },
    { t: 'leave', p: 'alice', disable: false, later: false, skew: 0 },
    { t: 'tick', minutes: 1 },
  ],
  // A cancellation that fails for good (403) while a departure disabled the account.
  [
    { t: 'leave', p: 'bob', disable: true, later: false, skew: 0 },
    { t: 'cancel', p: 'bob', skew: 0 },
    { t: 'deliver', i: 0 },
    { t: 'deliver', i: 0 },
    { t: 'forbidRead', p: 'bob' },
    { t: 'tick', minutes: 1 },
  ],
  // An MFA run that revoked and lost its audit write, then later attempts failed on the read.
  [
    { t: 'auditDown', writes: 1, skip: 3 },
    { t: 'leave', p: 'alice', disable: false, later: false, skew: 0 },
    { t: 'deliver', i: 0 },
    { t: 'mfa', p: 'bob' },
    { t: 'deliver', i: 0 },
    { t: 'forbidRead', p: 'bob' },
    { t: 'forbidRead', p: 'bob' },
  ],
];

/** Outcomes the runs reached: the sequences must reach every part of the story they claim to. */
const REACHED = new Map<string, number>();

const RUNS = Number(process.env.MODEL_RUNS ?? 1_000);

describe('one person, one timeline (model-based)', () => {
  it(`holds its invariants over ${RUNS} random sequences of events, faults and operator steps`, async () => {
    for (const regression of REGRESSIONS) await run(regression);
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), run), {
      numRuns: RUNS,
    });
    console.log(`model-based run reached: ${JSON.stringify(Object.fromEntries(REACHED))}`);
    for (const outcome of [
      'succeeded',
      'superseded',
      'cancelled',
      'held',
      'refused',
      'failed',
      'delayed',
    ])
      expect({ outcome, reached: (REACHED.get(outcome) ?? 0) > 0 }).toEqual({
        outcome,
        reached: true,
      });
  }, 120_000);
});
