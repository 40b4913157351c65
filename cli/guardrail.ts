import type { Runtime } from '../shared/app/runtime';
import type { RuntimeFactory } from './commands';
import type { GuardedRoute } from '../shared/core/guardrail';
import {
  discardHeld,
  guardrailStatus,
  releaseHeld,
  type GuardrailOpsDeps,
  type RouteStatus,
} from '../shared/core/guardrailOps';
import { planWaveSchedule, type WavePlan } from '../shared/pacing/waveSchedule';
import { WAVE_DEPARTURE_SHARE } from './enqueue';
import { ExitCodes, UsageError } from './exitCodes';
import { operator, type Io } from './io';
import { escapeUnsafe, formatTable, toJson } from './output';

/** `--kind` names the operator knows; the route each stands for. */
export const GUARDRAIL_KINDS: Readonly<Record<string, GuardedRoute>> = {
  departures: 'employeeLeaving',
  mfa: 'mfaEnabled',
};

export function parseKind(raw: string): GuardedRoute {
  const route = GUARDRAIL_KINDS[raw];
  if (route === undefined)
    throw new UsageError(`--kind must be one of ${Object.keys(GUARDRAIL_KINDS).join(', ')}.`);
  return route;
}

function kindOf(route: GuardedRoute): string {
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
    finalSinks: app.finalSinks,
  };
}

export async function guardrailStatusCommand(
  options: { json?: boolean },
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  return withOps(runtime, async (app) => {
    const statuses = await guardrailStatus(depsOf(app), app.config.guardrail);
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
    `${s.executedInWindow} / ${s.maxPerWindow} in ${s.windowMinutes} min`,
    String(s.held.length),
    String(s.trips),
    s.approvals.map((a) => `${a.wave} (${a.used}/${a.size})`).join(', ') || '-',
  ]);
  let text = formatTable(['kind', 'state', 'executed', 'held', 'trips', 'approved waves'], rows);
  for (const s of statuses) {
    if (s.held.length === 0) continue;
    text += `\nheld ${kindOf(s.route)} (oldest first):\n`;
    text += formatTable(
      ['event', 'user', 'held at', 'released by'],
      s.held.map((h) => [
        escapeUnsafe(h.eventId),
        escapeUnsafe(h.user ?? ''),
        h.heldAt ?? '',
        escapeUnsafe(h.releasedBy ?? ''),
      ]),
    );
    text += `release: offboard guardrail release --kind ${kindOf(s.route)} --reason "..." [--max N]; discard: offboard guardrail discard --kind ${kindOf(s.route)} --reason "..."\n`;
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
  return withOps(runtime, async (app) => {
    const route = parseKind(options.kind);
    const reason = requireReason(options.reason);
    const start = new Date();
    const writesPerSecond = app.config.pacing.writesPerSecond;
    let schedule: WavePlan | undefined;
    const result = await releaseHeld(depsOf(app), {
      route,
      by: operator(),
      reason,
      ...(options.max === undefined ? {} : { max: options.max }),
      // Released events run paced, like a wave: at the write budget less the departures' share.
      enqueueAt: (index, count) => {
        schedule ??= planWaveSchedule({
          events: count,
          writesPerEvent: route === 'employeeLeaving' ? 2 : 1,
          writesPerSecond: writesPerSecond > 0 ? writesPerSecond : 20,
          departureShare: WAVE_DEPARTURE_SHARE,
          start,
          batchMs: 1000,
        });
        return schedule.enqueueAt[index] ?? start;
      },
    });
    if (options.json) io.stdout(toJson(result) + '\n');
    else {
      io.stdout(
        `released ${result.released.length} held ${kindOf(route)} event(s) (approval ${result.approvalId}); ${result.stillHeld} still held\n`,
      );
      for (const r of result.released.filter((r) => r.note !== undefined))
        io.stdout(`  ${escapeUnsafe(r.eventId)}: ${r.note ?? ''}\n`);
    }
    for (const f of result.failures)
      io.stderr(`${escapeUnsafe(f.eventId)}: ${escapeUnsafe(f.error)} (run the release again)\n`);
    return result.failures.length > 0 ? ExitCodes.retryable : ExitCodes.ok;
  });
}

export async function guardrailDiscardCommand(
  options: { kind: string; reason?: string; json?: boolean },
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  return withOps(runtime, async (app) => {
    const route = parseKind(options.kind);
    const reason = requireReason(options.reason);
    const result = await discardHeld(depsOf(app), { route, by: operator(), reason });
    if (options.json) io.stdout(toJson(result) + '\n');
    else io.stdout(`discarded ${result.discarded.length} held ${kindOf(route)} event(s)\n`);
    for (const f of result.failures)
      io.stderr(
        `${escapeUnsafe(f.eventId)}: ${escapeUnsafe(f.error)} (the audit table says discarded; check offboard audit verify)\n`,
      );
    return result.failures.length > 0 ? ExitCodes.retryable : ExitCodes.ok;
  });
}
