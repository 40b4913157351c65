/**
 * What the person timeline costs: store operations per event, by kind, with the audit table's own
 * operations for the same events as the baseline (same run, same core, the in-memory stores with
 * the Table adapter's semantics). Operation counts do not depend on latency, so the in-memory core
 * measures them exactly; each is one Table request in Azure.
 *
 *   npx tsx bench/timelineCost.ts   (or: node dist/bench/timelineCost.js after npm run build)
 */
import {
  makeCore,
  leaving,
  leavingCancelled,
  message,
  mfaEnabled,
  reinstatedEvent,
} from '../test/core/harness';

type Counts = { reads: number; writes: number };

/** Wraps an object's methods in place so every call is counted as a read or a write. */
function count(target: object, reads: string[], writes: string[]): Counts {
  const counts: Counts = { reads: 0, writes: 0 };
  const methods = target as Record<string, (...args: unknown[]) => unknown>;
  for (const [names, kind] of [
    [reads, 'reads'],
    [writes, 'writes'],
  ] as const) {
    for (const name of names) {
      const original = methods[name]!.bind(target);
      methods[name] = (...args: unknown[]) => {
        counts[kind] += 1;
        return original(...args);
      };
    }
  }
  return counts;
}

interface Row {
  kind: string;
  events: number;
  audit: Counts;
  timeline: Counts;
}

async function measure(
  kind: string,
  events: number,
  run: (core: ReturnType<typeof makeCore>, i: number) => Promise<void>,
): Promise<Row> {
  const core = makeCore();
  // Users of their own, so every event is a person's first chapter or the one named.
  const audit = count(
    core.audit,
    ['read', 'listIdentity', 'findByUser', 'findByEventId'],
    ['create', 'replace'],
  );
  const timeline = count(core.timelines, ['read'], ['create', 'replace']);
  const before = { audit: { ...audit }, timeline: { ...timeline } };
  for (let i = 0; i < events; i++) await run(core, i);
  const per = (now: Counts, then: Counts): Counts => ({
    reads: (now.reads - then.reads) / events,
    writes: (now.writes - then.writes) / events,
  });
  return {
    kind,
    events,
    audit: per(audit, before.audit),
    timeline: per(timeline, before.timeline),
  };
}

async function main(): Promise<void> {
  const N = 200;
  const user = (core: ReturnType<typeof makeCore>, i: number) =>
    core.directory.addUser({ userPrincipalName: `cost.user${i}@contoso.com` }).userPrincipalName;
  const rows = [
    await measure('mfa.enabled', N, async (core, i) => {
      await core.handle('mfaEnabled', message(mfaEnabled(user(core, i))));
    }),
    await measure('employee.leaving (now)', N, async (core, i) => {
      await core.handle(
        'employeeLeaving',
        message(leaving(user(core, i), { disableAccount: true })),
      );
    }),
    await measure('employee.leaving.cancelled (nothing waiting)', N, async (core, i) => {
      await core.handle('employeeLeaving', message(leavingCancelled(user(core, i))));
    }),
    await measure('employee.leaving + employee.reinstated (per event)', N, async (core, i) => {
      const upn = user(core, i);
      await core.handle('employeeLeaving', message(leaving(upn, { disableAccount: true })));
      await core.handle('employeeLeaving', message(reinstatedEvent(upn)));
    }).then((row) => ({
      ...row,
      events: row.events * 2,
      audit: half(row.audit),
      timeline: half(row.timeline),
    })),
  ];
  console.log('Store operations per event (in Azure each is one Table request):');
  console.log('kind'.padEnd(52) + 'audit reads/writes'.padEnd(22) + 'timeline reads/writes');
  for (const row of rows)
    console.log(
      row.kind.padEnd(52) +
        `${row.audit.reads.toFixed(2)} / ${row.audit.writes.toFixed(2)}`.padEnd(22) +
        `${row.timeline.reads.toFixed(2)} / ${row.timeline.writes.toFixed(2)}`,
    );
  if (process.argv.includes('--json')) console.log(JSON.stringify(rows));
}

function half(counts: Counts): Counts {
  return { reads: counts.reads / 2, writes: counts.writes / 2 };
}

void main();
