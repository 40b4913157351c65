import type { Runtime } from '../shared/app/runtime';
import type { RuntimeFactory } from './commands';
import type { GuardrailName } from '../shared/core/guardrail';
import {
  decideHeld,
  guardrailStatus,
  reopenGuardrail,
  type DecisionResult,
  type GuardrailOpsDeps,
  type RouteStatus,
} from '../shared/core/guardrailOps';
import { planWaveSchedule, type WavePlan } from '../shared/pacing/waveSchedule';
import { WAVE_DEPARTURE_SHARE } from './enqueue';
import { ExitCodes, UsageError } from './exitCodes';
import { operator, type Io } from './io';
import { escapeUnsafe, formatTable, toJson } from './output';

/** `--kind` names the operator knows; the route each stands for. */
export const GUARDRAIL_KINDS: Readonly<Record<string, GuardrailName>> = {
  departures: 'employeeLeaving',
  mfa: 'mfaEnabled',
  reinstatements: 'employeeReinstated',
};

export function parseKind(raw: string): GuardrailName {
  const route = GUARDRAIL_KINDS[raw];
  if (route === undefined)
    throw new UsageError(`--kind must be one of ${Object.keys(GUARDRAIL_KINDS).join(', ')}.`);
  return route;
}

function kindOf(route: GuardrailName): string {
  return Object.entries(GUARDRAIL_KINDS).find(([, r]) => r === route)?.[0] ?? route;
}

function requireReason(reason: string | undefined): string {
  if (reason === undefined || reason.trim() === '')
    throw new UsageError('--reason must say why (it is audited).');
  return reason;
}

/** Runs `use` with the operator's runtime and closes it after (Service Bus keeps Node alive). */
async function withOps<T>(factory: RuntimeFactory, use: (app: Runtime) => Promise<T>): Promise<T> {
  const app = factory();
  try {
    return await use(app);
  } finally {
    await app.close();
  }
}

function depsOf(app: Runtime): GuardrailOpsDeps {
  return {
    audit: app.audit,
    store: app.guardrailStore,
    scheduler: app.scheduler,
    queues: app.config.queues,
  };
}

export async function guardrailStatusCommand(
  options: { json?: boolean },
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  return withOps(runtime, async (app) => {
    const statuses = await guardrailStatus(
      depsOf(app),
      app.config.guardrail.limits,
      app.config.guardrail.percentOfEnabledUsers,
    );
    if (options.json) {
      io.stdout(toJson({ routes: statuses }) + '\n');
    } else {
      io.stdout(formatStatus(statuses));
    }
    // A tripped guardrail or held events need an operator: say so in the exit code too.
    return statuses.some((s) => s.trip !== undefined || s.held.length > 0)
      ? ExitCodes.failed
      : ExitCodes.ok;
  });
}

export function formatStatus(statuses: RouteStatus[]): string {
  const rows = statuses.map((s) => [
    kindOf(s.route),
    s.trip === undefined ? 'ok' : `TRIPPED ${s.trip.at}`,
    `${s.executedInWindow} / ${s.maxPerWindow}${s.percentOfEnabledUsers > 0 ? ` (or ${s.percentOfEnabledUsers} % of enabled users, if lower)` : ''} in ${s.windowMinutes} min`,
    String(s.held.length),
    String(s.trips),
    s.approvals.map((a) => `${a.wave} (${a.used}/${a.size})`).join(', ') || '-',
  ]);
  // Every table and line ends with a newline: the next one (or the shell prompt) starts afresh.
  let text =
    formatTable(['kind', 'state', 'executed', 'held', 'trips', 'approved waves'], rows) + '\n';
  for (const s of statuses) {
    if (s.held.length === 0) continue;
    text += `\nheld ${kindOf(s.route)} (oldest first):\n`;
    text += formatTable(
      ['event', 'user', 'held at', 'decided'],
      s.held.map((h) => [
        escapeUnsafe(h.eventId),
        escapeUnsafe(h.user ?? ''),
        h.heldAt ?? '',
        h.decision === undefined ? '' : `${h.decision.kind} by ${escapeUnsafe(h.decision.by)}`,
      ]),
    );
    text += `\nrelease: offboard guardrail release --kind ${kindOf(s.route)} --reason "..." [--max N]; discard: offboard guardrail discard --kind ${kindOf(s.route)} --reason "..."\n`;
  }
  return text;
}

export interface ReleaseOptions {
  kind: string;
  reason?: string;
  max?: number;
  json?: boolean;
}

export async function guardrailReleaseCommand(
  options: ReleaseOptions,
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  return decideCommand('release', options, io, runtime);
}

export async function guardrailDiscardCommand(
  options: { kind: string; reason?: string; json?: boolean },
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  return decideCommand('discard', options, io, runtime);
}

/** An operator's decision: the kind and reason checked first, then the runtime. */
function withDecision(
  options: { kind: string; reason?: string },
  runtime: RuntimeFactory,
  use: (app: Runtime, route: GuardrailName, reason: string) => Promise<number>,
): Promise<number> {
  const route = parseKind(options.kind);
  const reason = requireReason(options.reason);
  return withOps(runtime, (app) => use(app, route, reason));
}

async function decideCommand(
  decision: 'release' | 'discard',
  options: ReleaseOptions,
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  return withDecision(options, runtime, async (app, route, reason) => {
    const start = new Date();
    const writesPerSecond = app.config.pacing.writesPerSecond;
    let schedule: WavePlan | undefined;
    const result = await decideHeld(depsOf(app), decision, {
      route,
      by: operator(),
      reason,
      ...(options.max === undefined ? {} : { max: options.max }),
      // Released events run paced, like a wave: at the write budget less the departures' share.
      enqueueAt: (index, count) => {
        schedule ??= planWaveSchedule({
          events: count,
          writesPerEvent: route === 'mfaEnabled' ? 1 : 2,
          writesPerSecond: writesPerSecond > 0 ? writesPerSecond : 20,
          departureShare: WAVE_DEPARTURE_SHARE,
          start,
          batchMs: 1000,
        });
        return schedule.enqueueAt[index] ?? start;
      },
    });
    if (options.json) io.stdout(toJson(result) + '\n');
    else io.stdout(describe(decision, kindOf(route), result));
    for (const f of result.failures)
      io.stderr(`${escapeUnsafe(f.eventId)}: ${escapeUnsafe(f.error)} (run the command again)\n`);
    return result.failures.length > 0 ? ExitCodes.retryable : ExitCodes.ok;
  });
}

function describe(decision: 'release' | 'discard', kind: string, result: DecisionResult): string {
  const last = result.sent.at(-1)?.at;
  let text =
    decision === 'release'
      ? `released ${result.sent.length} held ${kind} event(s) (approval ${result.approvalId}): they run paced${last === undefined ? '' : `, the last from about ${last}`}`
      : `discarded ${result.sent.length} held ${kind} event(s) (decision ${result.approvalId}): each is audited as discarded when it comes back through its queue`;
  text += `; ${result.stillHeld} still held`;
  text += result.tripCleared
    ? `; the trip is cleared, and the window still counts what ran before it (offboard guardrail reopen --kind ${kind} starts it again)\n`
    : `; still tripped until every held event is decided (run the command again for events held meanwhile)\n`;
  for (const id of result.resendNeeded)
    text += `  ${escapeUnsafe(id)}: too large to keep on its record; it takes effect when its sender sends it again\n`;
  return text;
}

/** `offboard guardrail reopen`: clears the trip and starts the window again, once none is held. */
export async function guardrailReopenCommand(
  options: { kind: string; reason?: string; json?: boolean },
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  return withDecision(options, runtime, async (app, route, reason) => {
    const result = await reopenGuardrail(depsOf(app), { route, by: operator(), reason });
    if (options.json) io.stdout(toJson(result) + '\n');
    else if (result.reopened)
      io.stdout(
        `reopened the ${options.kind} guardrail: the trip is cleared and the window starts again now\n`,
      );
    else
      io.stderr(
        `not reopened: ${result.undecided.length} held ${options.kind} event(s) have no decision yet; release or discard them first (offboard guardrail status)\n`,
      );
    return result.reopened ? ExitCodes.ok : ExitCodes.failed;
  });
}
