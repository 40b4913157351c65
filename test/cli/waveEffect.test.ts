/**
 * `offboard report --wave ID` as ops run it (a child process): the MFA events of a wave run through
 * the real handler against the Graph stand-in, the stand-in's sign-in log holds what people did
 * since, and the report says who signed in again with MFA, who has not signed in, who signed in
 * without MFA. Compared with a count made by hand.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQueueHandler } from '../../shared/adapters/functionHandler';
import { latestRecordFor } from '../../shared/core/auditRecords';
import { mfaEffect, type SignInEntry } from '../../shared/core/signInWatch';
import { buildWaveEffect, type WaveEffect } from '../../cli/waveEffect';
import type { AuditRecord, SignInLog, SignInPage } from '../../shared/core/ports';
import { runCli } from '../support/cli';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let cliEnv: Record<string, string>;
const WAVE = `mfa-${randomUUID().slice(0, 8)}`;
const people: Record<string, { id: string; upn: string; revokedAt: string }> = {};

beforeAll(async () => {
  world = await startWorld();
  cliEnv = { ...world.env, ...world.identity.envFor() };
  const handler = createQueueHandler(() => world.runtime, 'mfaEnabled');
  for (const name of ['mfa', 'none', 'single', 'before', 'otherWave']) {
    const user = world.newUser();
    const wave = name === 'otherWave' ? 'another-wave' : WAVE;
    // The ids `offboard enqueue` gives a wave's events.
    const event = cloudEvent('mfa.enabled', { user: user.upn }, `mfa.enabled-${wave}-${name}`);
    await handler(event, world.context());
    const record = await latestRecordFor(world.runtime.audit, event.id as string);
    expect(record?.outcome).toBe('succeeded');
    people[name] = { ...user, revokedAt: record?.verification?.signInSessionsValidFrom ?? '' };
  }
  const at = (name: string, ms = 0) =>
    new Date(Date.parse(people[name]?.revokedAt ?? '') + ms).toISOString();
  const add = (name: string, createdDateTime: string, extra: Record<string, unknown>) =>
    world.graph.addSignIn({ userId: people[name]?.id ?? '', createdDateTime, ...extra });
  add('mfa', at('mfa'), { authenticationRequirement: 'multiFactorAuthentication' });
  add('none', at('none'), { errorCode: 50126 }); // a failed attempt is no sign-in
  add('single', at('single'), { authenticationRequirement: 'singleFactorAuthentication' });
  add('before', at('before', -60_000), { authenticationRequirement: 'multiFactorAuthentication' });
  add('otherWave', at('otherWave'), { authenticationRequirement: 'singleFactorAuthentication' });
});
afterAll(async () => {
  await world.stop();
});

describe('offboard report --wave', () => {
  it('counts who signed in with MFA, who has not signed in yet, who signed in without MFA', async () => {
    const run = await runCli(['report', '--wave', WAVE, '--since', '1d', '--json'], cliEnv);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const effect = JSON.parse(run.stdout) as WaveEffect;
    expect(effect).toMatchObject({
      wave: WAVE,
      signInLog: 'beta',
      events: 4,
      revoked: 4,
      withMfa: 1,
      notSignedIn: 2,
      withoutMfa: 1,
      mfaNotStated: 0,
      unavailable: 0,
    });
    expect(effect.people['without-mfa']).toEqual([
      { objectId: people.single?.id, userPrincipalName: people.single?.upn },
    ]);
    expect(effect.people['not-signed-in'].map((p) => p.objectId).sort()).toEqual(
      [people.none?.id, people.before?.id].sort(),
    );

    const table = await runCli(['report', '--wave', WAVE, '--since', '1d'], cliEnv);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/signed in with MFA\s+1/);
    expect(table.stdout).toMatch(/not signed in yet\s+2/);
    expect(table.stdout).toMatch(/signed in without MFA\s+1/);
    expect(table.stdout).toContain(people.single?.upn);
  });

  it('--html adds the wave to the evidence page', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'wave-')), 'report.html');
    const run = await runCli(['report', '--wave', WAVE, '--since', '1d', '--html', file], cliEnv);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const html = readFileSync(file, 'utf8');
    expect(html).toContain(`<h2>MFA wave ${WAVE}</h2>`);
    for (const [name, value] of [
      ['waveWithMfa', 1],
      ['waveNotSignedIn', 2],
      ['waveWithoutMfa', 1],
    ] as const)
      expect(html).toMatch(new RegExp(`data-figure="${name}"><b>${value}</b>`));
    expect(html).toContain(people.single?.upn);
  });

  it('read from v1.0 (SIGNIN_LOG_GRAPH_VERSION) the signed-in are "MFA not stated", and the report says why', async () => {
    const env = { ...cliEnv, SIGNIN_LOG_GRAPH_VERSION: 'v1.0' };
    const run = await runCli(['report', '--wave', WAVE, '--since', '1d', '--json'], env);
    expect(run.stderr).toBe('');
    const effect = JSON.parse(run.stdout) as WaveEffect;
    expect(effect).toMatchObject({
      signInLog: 'v1.0',
      withMfa: 0,
      withoutMfa: 0,
      mfaNotStated: 2,
      notSignedIn: 2,
    });
    expect(effect.mfaNotStatedReason).toMatch(/beta property/);
    const table = await runCli(['report', '--wave', WAVE, '--since', '1d'], env);
    expect(table.stdout).toMatch(/MFA not stated because[\s\S]*SIGNIN_LOG_GRAPH_VERSION=beta/);
  });

  it('without Entra ID P1/P2 the people are counted unavailable, and the report says why', async () => {
    world.graph.setPremiumLicence(false);
    try {
      const run = await runCli(['report', '--wave', WAVE, '--since', '1d', '--json'], cliEnv);
      expect(run.code).toBe(0);
      const effect = JSON.parse(run.stdout) as WaveEffect;
      expect(effect).toMatchObject({ revoked: 4, unavailable: 4, withMfa: 0, notSignedIn: 0 });
      expect(effect.unavailableReason).toMatch(/^NoPremiumLicence: .*P1 or P2/);
    } finally {
      world.graph.setPremiumLicence(true);
    }
  });

  it('a wave id that is not one is refused before anything is read', async () => {
    const run = await runCli(['report', '--wave', 'bad wave!'], cliEnv);
    expect(run.code).toBe(64);
  });
});

describe('mfaEffect (the rule)', () => {
  const since = '2026-11-30T09:00:00Z';
  const entry = (
    at: string,
    errorCode: number,
    requirement?: SignInEntry['authenticationRequirement'],
  ) => ({
    id: randomUUID(),
    createdDateTime: at,
    errorCode,
    ...(requirement === undefined ? {} : { authenticationRequirement: requirement }),
  });
  it('MFA once is enough; single factor only is without; silent is not stated; failures are none', () => {
    const mfa = entry('2026-11-30T10:00:00Z', 0, 'multiFactorAuthentication');
    const single = entry('2026-11-30T10:00:00Z', 0, 'singleFactorAuthentication');
    expect(mfaEffect([single, mfa], since)).toBe('with-mfa');
    expect(mfaEffect([single], since)).toBe('without-mfa');
    expect(mfaEffect([entry('2026-11-30T10:00:00Z', 0)], since)).toBe('mfa-not-stated');
    expect(
      mfaEffect([entry('2026-11-30T10:00:00Z', 50126, 'multiFactorAuthentication')], since),
    ).toBe('not-signed-in');
    expect(mfaEffect([entry('2026-11-30T08:59:59Z', 0, 'multiFactorAuthentication')], since)).toBe(
      'not-signed-in',
    );
  });
});

describe('buildWaveEffect (what a partial read may claim)', () => {
  const from = '2026-11-30T09:00:00.000Z';
  const record = (objectId: string) =>
    ({
      eventId: `mfa.enabled-w1-${objectId}`,
      eventType: 'mfa.enabled',
      outcome: 'succeeded',
      objectId,
      verification: { verified: true, signInSessionsValidFrom: from },
    }) as unknown as AuditRecord;
  const single: SignInEntry = {
    id: 's1',
    createdDateTime: '2026-11-30T10:00:00Z',
    errorCode: 0,
    authenticationRequirement: 'singleFactorAuthentication',
  };
  const log = (page: SignInPage): SignInLog => ({
    listSignIns: () => Promise.resolve(page),
    nextSignIns: () => Promise.reject(new Error('one page only')),
  });

  it('an unreadable entry could be an MFA sign-in: "without MFA" is not claimed', async () => {
    const effect = await buildWaveEffect(
      [record('u1')],
      'w1',
      log({ signIns: [single], unreadable: 1 }),
      new Date(from),
      new Date('2026-11-30T12:00:00Z'),
      'beta',
    );
    expect(effect).toMatchObject({ withoutMfa: 0, unavailable: 1 });
    expect(effect.unavailableReason).toMatch(/^UnreadableSignIns/);
  });

  it('a person revoked more than 30 days ago (beyond the log) is unavailable, not "not signed in"', async () => {
    const effect = await buildWaveEffect(
      [record('u1')],
      'w1',
      log({ signIns: [] }),
      new Date(from),
      new Date('2027-01-05T12:00:00Z'),
      'beta',
    );
    expect(effect).toMatchObject({ notSignedIn: 0, unavailable: 1 });
    expect(effect.unavailableReason).toMatch(/^BeyondRetention: .*30 days/);
  });

  it('a person revoked twice in the wave counts from the latest revocation', async () => {
    const again = { ...record('u1'), eventId: 'mfa.enabled-w1-u1-again' };
    again.verification = { verified: true, signInSessionsValidFrom: '2026-11-30T11:00:00.000Z' };
    const mfaBetween: SignInEntry = {
      ...single,
      authenticationRequirement: 'multiFactorAuthentication',
    };
    for (const records of [
      [record('u1'), again],
      [again, record('u1')],
    ]) {
      const effect = await buildWaveEffect(
        records,
        'w1',
        log({ signIns: [mfaBetween] }),
        new Date(from),
        new Date('2026-11-30T12:00:00Z'),
        'beta',
      );
      expect(effect).toMatchObject({ revoked: 1, withMfa: 0, notSignedIn: 1 });
    }
  });

  it('"with MFA" stands on what was read', async () => {
    const mfa: SignInEntry = { ...single, authenticationRequirement: 'multiFactorAuthentication' };
    const effect = await buildWaveEffect(
      [record('u1')],
      'w1',
      log({ signIns: [mfa], unreadable: 2 }),
      new Date(from),
      new Date('2026-11-30T12:00:00Z'),
      'beta',
    );
    expect(effect).toMatchObject({ withMfa: 1, unavailable: 0 });
  });
});
