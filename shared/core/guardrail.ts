import { ErrorCodes, OffboardingError } from './errors';
import type { OperatorDecision, RecordKey } from './ports';
import { kindOfType, type EventKind } from './events';
import { routeOfKind, type RouteName } from './routes';
import { rootOf } from './waveApproval';

/*
 * The blast-radius guardrail. A mis-configured HR feed that sends "leaving" for thousands of people
 * must not disable thousands of people: executions are counted per route over a sliding window,
 * shared by every instance through one record in the audit storage account, and past the limit
 * the guardrail trips. A trip latches: every further event of that route is held (nothing written
 * to Graph) until an operator releases or discards the held events (`offboard guardrail`).
 */

/** The log line of a trip: the guardrail alert looks for it (infra reads it through the contract). */
export const GUARDRAIL_TRIPPED = 'GuardrailTripped: the blast-radius guardrail held further events';

/**
 * The guardrails, each with its own limit, count and trip: departures and `mfa.enabled` events
 * (one per queue), and reinstatements (on the departures queue, counted apart: a departures trip
 * never blocks a rehire, and a runaway feed of reinstatements trips its own).
 */
export type GuardrailName = RouteName | 'employeeReinstated';
export const GuardrailNames: readonly GuardrailName[] = [
  'employeeLeaving',
  'mfaEnabled',
  'employeeReinstated',
];

/** The guardrail that counts events of this kind. */
export function guardrailOf(kind: EventKind): GuardrailName {
  return kind === 'employee.reinstated' ? 'employeeReinstated' : routeOfKind(kind);
}

/** The guardrail that counted (or held) the event of this record; undefined for an invalid one. */
export function guardrailOfRecord(record: { eventType?: string }): GuardrailName | undefined {
  const kind = record.eventType === undefined ? undefined : kindOfType(record.eventType);
  return kind === undefined ? undefined : guardrailOf(kind);
}

/** The queue a guardrail's held events go back through when an operator decides about them. */
export function routeOfGuardrail(name: GuardrailName): RouteName {
  return name === 'employeeReinstated' ? 'employeeLeaving' : name;
}

/** What a guardrail counts, in words. */
export const GuardrailSubjects: Readonly<Record<GuardrailName, string>> = {
  employeeLeaving: 'departures',
  mfaEnabled: 'mfa.enabled events',
  employeeReinstated: 'reinstatements',
};

export interface GuardrailLimit {
  maxPerWindow: number;
  windowMinutes: number;
  /** How the limit was derived when it is not the setting itself (a share of the tenant). */
  basis?: string;
}

export type GuardrailLimits = Readonly<Record<GuardrailName, GuardrailLimit>>;

export interface GuardrailTrip {
  at: string;
  /** Which trip of the route this is (the `trips` count when it tripped): decisions name it. */
  number?: number;
  /**
   * Events held since it tripped (the one that tripped it included), counted in the same
   * conditional write that held them: the trip clears only once as many were decided.
   */
  held?: number;
  /** Executions counted in the window when it tripped, and the limit. */
  count: number;
  limit: number;
  windowMinutes: number;
  basis?: string;
  /** The event that tripped it (identityKey.contentDigest). */
  trippedBy?: string;
}

/**
 * An `offboard enqueue` wave: an operator's approval of exactly the events of its file. `roots` are
 * the digests of those events (waveApproval.ts; one per file sent under this wave id); an event is
 * admitted under it only with a path from its own record key to one of them, at most `size` in all.
 */
export interface WaveApproval extends OperatorDecision {
  size: number;
  roots: string[];
  used: number;
  expiresAt: string;
}

export type GuardrailDecisionKind = 'release' | 'discard' | 'approve-wave' | 'reopen';

export interface GuardrailDecision extends OperatorDecision {
  action: GuardrailDecisionKind;
  /** Events released or discarded, or the wave's size. */
  count: number;
  /** The release's approval id, or the wave id. */
  approval?: string;
}

/** What one route's guardrail record holds. */
export interface GuardrailState {
  /** Executions admitted per bucket (bucket start, epoch ms, as text), within the window. */
  buckets: Record<string, number>;
  /** Set while tripped (it latches until the held events are released or discarded). */
  trip?: GuardrailTrip;
  /** Trips so far (reports count them). */
  trips: number;
  approvals: Record<string, WaveApproval>;
  /** The latest operator decisions (the events' own records keep each one too). */
  decisions: GuardrailDecision[];
}

export interface StoredGuardrail {
  state: GuardrailState;
  etag: string;
  /** The store's own clock when it answered (epoch ms), when it says: see `Clock`. */
  storeTime?: number;
}

/**
 * An operator's decision about one held event (`offboard guardrail release | discard`). The app
 * applies it when the event comes back through its queue: ops never write the audit table, and
 * the immutable log and the outcome topic are written by the app's identity only.
 */
export interface EventDecision extends OperatorDecision {
  kind: 'release' | 'discard';
  /** The operator's command run (one id per release or discard). */
  approvalId: string;
  /** The trip the event was held under (its `number`), when the command knew it. */
  trip?: number;
}

/** Who decided, why and when, as an event's record keeps it. */
export function decidedBy(decision: EventDecision): OperatorDecision {
  return { by: decision.by, reason: decision.reason, at: decision.at };
}

/**
 * Where the guardrail lives (its own table: operators may write it, not the audit). Each route's
 * record is read, and written only at the version read (or only if absent, with etag undefined);
 * `write` resolves undefined when another writer got there first. Decisions are per event.
 */
export interface GuardrailStore {
  read(route: GuardrailName): Promise<StoredGuardrail | undefined>;
  write(
    route: GuardrailName,
    state: GuardrailState,
    etag: string | undefined,
  ): Promise<string | undefined>;
  /** The decision about one event, if an operator made one. */
  decisionFor(route: GuardrailName, key: RecordKey): Promise<EventDecision | undefined>;
  /** Records a decision unless one exists; resolves to the one that stands (the first). */
  decide(route: GuardrailName, key: RecordKey, decision: EventDecision): Promise<EventDecision>;
  /** How many held events of that trip have a decision. */
  decidedInTrip(route: GuardrailName, trip: number): Promise<number>;
}

export type Admission =
  | { admitted: true; approval?: string }
  | { admitted: false; reason: string; trip: GuardrailTrip; trippedNow: boolean };

export interface AdmissionRequest {
  route: GuardrailName;
  /** The wave id the event came with (`offboard enqueue`), and its path to the approval's digest. */
  wave?: string;
  waveProof?: string;
  /**
   * The event's record key: the trip remembers which event tripped it, so that event's next
   * delivery raises the alert again if its record could not be written the first time.
   */
  event?: RecordKey;
}

/** Decisions kept on the guardrail record; each event's own record keeps its own. */
const MAX_DECISIONS = 20;
/** Buckets per window: the window slides in steps of window / 60 (at least a minute). */
const BUCKETS_PER_WINDOW = 60;
/** Conditional writes lost in a row before admission gives up (the event is retried later). */
const MAX_CONFLICTS = 12;

export function emptyState(): GuardrailState {
  return { buckets: {}, trips: 0, approvals: {}, decisions: [] };
}

function bucketMs(limit: GuardrailLimit): number {
  return Math.max(60_000, Math.floor((limit.windowMinutes * 60_000) / BUCKETS_PER_WINDOW));
}

/**
 * The times one decision uses. Instances' clocks differ: the window is measured back from the
 * earlier of this instance's clock and the store's (so a clock running ahead never moves the
 * window past others' buckets and drops them), and an execution is put in the bucket of the later
 * one (so a clock running behind never puts it where it expires early). Both err high, never low.
 */
export interface Clock {
  /** Where the window ends for counting and pruning. */
  windowEnd: number;
  /** Where this execution is counted. */
  countAt: number;
}

export function clockOf(now: number, storeTime: number | undefined): Clock {
  return storeTime === undefined
    ? { windowEnd: now, countAt: now }
    : { windowEnd: Math.min(now, storeTime), countAt: Math.max(now, storeTime) };
}

const insideWindow = (start: string, limit: GuardrailLimit, windowEnd: number) =>
  // A bucket counts while any part of it is inside the window; one in the future always counts.
  Number(start) + bucketMs(limit) > windowEnd - limit.windowMinutes * 60_000;

/**
 * Executions counted in the window ending at `windowEnd`. A bucket counts while any part of it is
 * inside the window, so the count errs high (by at most one bucket), never low.
 */
export function countInWindow(
  state: GuardrailState,
  limit: GuardrailLimit,
  windowEnd: number,
): number {
  return Object.entries(state.buckets)
    .filter(([start]) => insideWindow(start, limit, windowEnd))
    .reduce((sum, [, count]) => sum + count, 0);
}

function pruned(state: GuardrailState, limit: GuardrailLimit, clock: Clock): GuardrailState {
  const buckets = Object.fromEntries(
    Object.entries(state.buckets).filter(([start]) => insideWindow(start, limit, clock.windowEnd)),
  );
  const approvals = Object.fromEntries(
    Object.entries(state.approvals).filter(([, a]) => Date.parse(a.expiresAt) > clock.windowEnd),
  );
  return { ...state, buckets, approvals };
}

/** Whether the event is one the wave's approval names (its path leads to one of its digests). */
function approvedBy(approval: WaveApproval, request: AdmissionRequest): boolean {
  if (request.event === undefined || request.waveProof === undefined) return false;
  const root = rootOf(request.event, request.waveProof);
  return root !== undefined && (approval.roots ?? []).includes(root);
}

/** The admission decision on one state (pure): the next state to write, and the verdict. */
export function decideAdmission(
  current: GuardrailState,
  request: AdmissionRequest,
  limit: GuardrailLimit,
  now: number,
  storeTime?: number,
): { next?: GuardrailState; admission: Admission } {
  const clock = clockOf(now, storeTime);
  const state = pruned(current, limit, clock);
  const approval = request.wave === undefined ? undefined : state.approvals[request.wave];
  if (approval !== undefined && approval.used < approval.size && approvedBy(approval, request)) {
    // One of the operator's own wave events: counted against the wave, not the window.
    return {
      next: {
        ...state,
        approvals: {
          ...state.approvals,
          [request.wave as string]: { ...approval, used: approval.used + 1 },
        },
      },
      admission: { admitted: true, approval: request.wave as string },
    };
  }
  if (state.trip !== undefined) {
    const again = request.event !== undefined && state.trip.trippedBy === keyText(request.event);
    if (again) return { admission: held(state.trip, request.route, true) };
    // Counted in the same write that holds it: a decision cannot clear the trip past it.
    const trip = { ...state.trip, held: (state.trip.held ?? 0) + 1 };
    return { next: { ...state, trip }, admission: held(trip, request.route, false) };
  }
  const count = countInWindow(state, limit, clock.windowEnd);
  if (count + 1 > limit.maxPerWindow) {
    const trip: GuardrailTrip = {
      at: new Date(clock.countAt).toISOString(),
      number: state.trips + 1,
      held: 1,
      count,
      limit: limit.maxPerWindow,
      windowMinutes: limit.windowMinutes,
      ...(limit.basis === undefined ? {} : { basis: limit.basis }),
      ...(request.event === undefined ? {} : { trippedBy: keyText(request.event) }),
    };
    return {
      next: { ...state, trip, trips: state.trips + 1 },
      admission: held(trip, request.route, true),
    };
  }
  const size = bucketMs(limit);
  const bucket = String(Math.floor(clock.countAt / size) * size);
  return {
    next: { ...state, buckets: { ...state.buckets, [bucket]: (state.buckets[bucket] ?? 0) + 1 } },
    admission: { admitted: true },
  };
}

const keyText = (key: RecordKey) => `${key.identityKey}.${key.contentDigest}`;

function held(trip: GuardrailTrip, route: GuardrailName, trippedNow: boolean): Admission {
  const what = GuardrailSubjects[route];
  return {
    admitted: false,
    trip,
    trippedNow,
    reason: `The blast-radius guardrail for ${what} tripped at ${trip.at}: ${trip.count} executed in ${trip.windowMinutes} min (limit ${trip.limit}${trip.basis === undefined ? '' : `: ${trip.basis}`}). Held until an operator releases or discards it (offboard guardrail status).`,
  };
}

const withDecision = (state: GuardrailState, decision: GuardrailDecision): GuardrailState => ({
  ...state,
  decisions: [...state.decisions, decision].slice(-MAX_DECISIONS),
});

/**
 * After an operator's release or discard: the decision is kept, and the trip clears only when
 * every event held under it has a decision (`decided`, counted from the decisions themselves, at
 * least the trip's `held`, which each hold raised in its own conditional write). The window keeps
 * what it counted: the feed that tripped it is still suspect (`reopen` starts it again).
 */
export function afterDecision(
  current: GuardrailState,
  decision: GuardrailDecision,
  decided: { trip: number; count: number } | undefined,
): GuardrailState {
  const next = withDecision(current, decision);
  const trip = current.trip;
  if (trip === undefined || decided === undefined || (trip.number ?? 0) !== decided.trip)
    return next;
  if (decided.count < (trip.held ?? 0)) return next;
  delete next.trip;
  return next;
}

/**
 * `offboard guardrail reopen`: an operator opens the gate on purpose. The trip clears and the
 * window starts again from now (what ran before no longer counts); the decision is kept.
 */
export function reopened(current: GuardrailState, decision: GuardrailDecision): GuardrailState {
  const next: GuardrailState = { ...withDecision(current, decision), buckets: {} };
  delete next.trip;
  return next;
}

/** Records an operator's wave approval: the digest of its events, and their number. */
export function withWaveApproval(
  current: GuardrailState,
  wave: string,
  approval: Omit<WaveApproval, 'used' | 'roots'> & { root: string },
): GuardrailState {
  const existing = current.approvals[wave];
  const { root, ...rest } = approval;
  const known = existing?.roots?.includes(root) === true;
  return withDecision(
    {
      ...current,
      approvals: {
        ...current.approvals,
        // The same file sent again (the rest of it) keeps what was used; another file under the
        // same wave id adds its own events.
        [wave]: {
          ...rest,
          used: existing?.used ?? 0,
          roots: known ? (existing?.roots ?? []) : [...(existing?.roots ?? []), root],
          size: known
            ? Math.max(approval.size, existing?.size ?? 0)
            : approval.size + (existing?.size ?? 0),
        },
      },
    },
    {
      action: 'approve-wave' as const,
      count: approval.size,
      approval: wave,
      by: approval.by,
      reason: approval.reason,
      at: approval.at,
    },
  );
}

/** Reads a route's state, changes it, and writes it back at the version read (retrying lost races). */
export async function updateGuardrail<T>(
  store: GuardrailStore,
  route: GuardrailName,
  change: (
    current: GuardrailState,
    storeTime: number | undefined,
  ) => { next?: GuardrailState; result: T } | Promise<{ next?: GuardrailState; result: T }>,
  random: () => number = Math.random,
): Promise<T> {
  for (let conflicts = 0; ; conflicts += 1) {
    const stored = await store.read(route);
    const { next, result } = await change(stored?.state ?? emptyState(), stored?.storeTime);
    if (next === undefined) return result;
    const written = await store.write(route, next, stored?.etag);
    if (written !== undefined) return result;
    if (conflicts >= MAX_CONFLICTS) {
      // Contention, not a failure: the event waits (a copy for later) without using an attempt.
      throw new OffboardingError(
        ErrorCodes.Deferred,
        `The guardrail record of ${route} kept changing under ${MAX_CONFLICTS} writes in a row (other instances admitting at the same time); the event waits and comes back.`,
        { retryable: true, retryAfterSeconds: 2 + random() * 3 },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 5 + random() * 20 * (conflicts + 1)));
  }
}

/** The guardrail as the use case sees it. */
export interface Guardrail {
  /** Admits one execution, or says why it is held. Throws a retryable error if it cannot tell. */
  admit(request: AdmissionRequest): Promise<Admission>;
  /** An operator's decision about a held event, if any. */
  decisionFor(route: GuardrailName, key: RecordKey): Promise<EventDecision | undefined>;
}

/**
 * The optional second limit: at most a share of the tenant's enabled users per window (whichever
 * of the two is lower applies). The count is read from the directory at most once per `cacheMs`
 * per instance; when it cannot be read the event waits (retryable), it never runs unchecked.
 */
export interface TenantShareLimit {
  /** Percent of enabled users per window, per route; 0 or absent: no such limit. */
  percent: Partial<Record<GuardrailName, number>>;
  countEnabledUsers: () => Promise<number>;
  cacheMs?: number;
}

/** The effective limit: the setting, or the tenant share when that is lower (never below 1). */
export function effectiveLimit(
  limit: GuardrailLimit,
  percent: number | undefined,
  enabledUsers: number | undefined,
): GuardrailLimit {
  if (percent === undefined || percent <= 0 || enabledUsers === undefined) return limit;
  const byShare = Math.max(1, Math.floor((enabledUsers * percent) / 100));
  return byShare >= limit.maxPerWindow
    ? limit
    : {
        ...limit,
        maxPerWindow: byShare,
        basis: `${percent} % of ${enabledUsers} enabled users`,
      };
}

interface PendingAdmission {
  request: AdmissionRequest;
  resolve: (admission: Admission) => void;
  reject: (error: unknown) => void;
}

export class SharedGuardrail implements Guardrail {
  private enabledUsers: { value: Promise<number>; readAt: number } | undefined;

  constructor(
    private readonly store: GuardrailStore,
    private readonly limits: GuardrailLimits,
    private readonly now: () => Date = () => new Date(),
    private readonly share?: TenantShareLimit,
  ) {}

  /**
   * Fails closed: when the record cannot be read or written the error is retryable, never
   * "admitted". Admissions of one instance that arrive while its last store round-trip is in
   * flight are decided together in the next one (one read and one conditional write for all of
   * them), so contention grows with instances, not with concurrent invocations.
   */
  admit(request: AdmissionRequest): Promise<Admission> {
    return new Promise((resolve, reject) => {
      const queue = this.waiting.get(request.route) ?? [];
      queue.push({ request, resolve, reject });
      this.waiting.set(request.route, queue);
      void this.drain(request.route);
    });
  }

  private readonly waiting = new Map<GuardrailName, PendingAdmission[]>();
  private readonly draining = new Set<GuardrailName>();

  private async drain(route: GuardrailName): Promise<void> {
    if (this.draining.has(route)) return;
    this.draining.add(route);
    try {
      for (;;) {
        const batch = this.waiting.get(route)?.splice(0) ?? [];
        if (batch.length === 0) return;
        try {
          const admissions = await this.decideBatch(
            route,
            batch.map((p) => p.request),
          );
          batch.forEach((pending, i) => {
            const admission = admissions[i];
            if (admission === undefined) pending.reject(new Error('Admission missing.'));
            else pending.resolve(admission);
          });
        } catch (error) {
          for (const pending of batch) pending.reject(error);
        }
      }
    } finally {
      this.draining.delete(route);
    }
  }

  private async decideBatch(
    route: GuardrailName,
    requests: AdmissionRequest[],
  ): Promise<Admission[]> {
    const percent = this.share?.percent[route];
    const limit = effectiveLimit(
      this.limits[route],
      percent,
      percent !== undefined && percent > 0 ? await this.countEnabledUsers() : undefined,
    );
    return updateGuardrail(this.store, route, (current, storeTime) => {
      const now = this.now().getTime();
      let state = current;
      let changed = false;
      const admissions = requests.map((request) => {
        const { next, admission } = decideAdmission(state, request, limit, now, storeTime);
        if (next !== undefined) {
          state = next;
          changed = true;
        }
        return admission;
      });
      return { ...(changed ? { next: state } : {}), result: admissions };
    });
  }

  decisionFor(route: GuardrailName, key: RecordKey): Promise<EventDecision | undefined> {
    return this.store.decisionFor(route, key);
  }

  private countEnabledUsers(): Promise<number> {
    const share = this.share;
    if (share === undefined) return Promise.resolve(0);
    const now = this.now().getTime();
    const cached = this.enabledUsers;
    if (cached !== undefined && now - cached.readAt < (share.cacheMs ?? 3_600_000))
      return cached.value;
    const value = share.countEnabledUsers();
    this.enabledUsers = { value, readAt: now };
    // A failed read is not cached: the next event asks again.
    value.catch(() => {
      if (this.enabledUsers?.value === value) this.enabledUsers = undefined;
    });
    return value;
  }
}
