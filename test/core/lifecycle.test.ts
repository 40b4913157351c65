/**
 * The record's lifecycle, declared once (shared/core/lifecycle.ts): every pair of phases checked
 * against what the rules say, and shared/core free of import cycles.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  LIFECYCLE,
  Phases,
  assertMove,
  canMove,
  isAnnounced,
  isEnded,
  isFinal,
  phaseOf,
  type Phase,
} from '../../shared/core/lifecycle';
import { Outcomes } from '../../shared/core/ports';

const ENDS: Phase[] = ['succeeded', 'cancelled', 'discarded', 'superseded'];
/** Phases a departure may be in while nothing of it has reached Graph. */
const WAITING: Phase[] = ['in-progress', 'scheduled', 'failed-retryable', 'delayed', 'held'];

function recordIn(phase: Phase) {
  if (phase === 'failed-retryable') return { outcome: 'failed' as const, retryable: true };
  if (phase === 'failed-permanent') return { outcome: 'failed' as const, retryable: false };
  return { outcome: phase };
}

describe('the record lifecycle table', () => {
  it('has a row for every outcome (failed split by retryable)', () => {
    const expected = Outcomes.flatMap((o) =>
      o === 'failed' ? ['failed-retryable', 'failed-permanent'] : [o],
    ).sort();
    expect([...Phases].sort()).toEqual(expected);
  });

  it.each(Phases.flatMap((from) => Phases.map((to) => [from, to] as const)))(
    '%s -> %s follows the rules',
    (from, to) => {
      let allowed: boolean;
      if (from === to) allowed = true;
      else if (ENDS.includes(from))
        allowed = false; // an end never moves
      else if (to === 'cancelled') allowed = WAITING.includes(from);
      else if (to === 'discarded') allowed = from === 'held';
      else allowed = true;
      expect(canMove(from, to)).toBe(allowed);
      const move = () => assertMove(recordIn(from), { ...recordIn(to), eventId: 'e1' });
      if (allowed) expect(move).not.toThrow();
      else expect(move).toThrow(/does not allow/);
    },
  );

  it('says which phases are final, announced and ended', () => {
    const finals = Phases.filter((p) => LIFECYCLE[p].final).sort();
    expect(finals).toEqual(
      [
        'cancelled',
        'discarded',
        'dry-run',
        'failed-permanent',
        'held',
        'refused',
        'succeeded',
        'superseded',
      ].sort(),
    );
    // Delayed is announced (the alert) without being final; every final phase is announced.
    expect(Phases.filter((p) => LIFECYCLE[p].announced).sort()).toEqual(
      [...finals, 'delayed'].sort(),
    );
    expect(Phases.filter((p) => LIFECYCLE[p].next.length === 0).sort()).toEqual([...ENDS].sort());
    const record = (outcome: (typeof Outcomes)[number], retryable?: boolean) => ({
      outcome,
      ...(retryable === undefined ? {} : { retryable }),
    });
    expect(phaseOf(record('failed', true))).toBe('failed-retryable');
    expect(phaseOf(record('failed', false))).toBe('failed-permanent');
    expect(isFinal(record('delayed'))).toBe(false);
    expect(isAnnounced(record('delayed'))).toBe(true);
    expect(isEnded(record('superseded'))).toBe(true);
  });
});

describe('shared/core', () => {
  it('has no import cycle at run time (type-only imports are erased)', () => {
    const dir = join(__dirname, '..', '..', 'shared', 'core');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    const edges = new Map<string, string[]>();
    for (const file of files) {
      const text = readFileSync(join(dir, file), 'utf8');
      const targets = [...text.matchAll(/(?:import|export)(\s+type)?\s[^;]*?from '\.\/([\w.]+)'/g)]
        .filter((m) => m[1] === undefined)
        .map((m) => `${m[2]}.ts`);
      edges.set(
        file,
        [...new Set(targets)].filter((t) => files.includes(t)),
      );
    }
    const cycles: string[] = [];
    const visit = (file: string, path: string[]): void => {
      if (path.includes(file)) {
        cycles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
        return;
      }
      for (const next of edges.get(file) ?? []) visit(next, [...path, file]);
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });
});
