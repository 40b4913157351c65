/**
 * The Graph stand-in's sign-in log (GET /v1.0/auditLogs/signIns) over HTTPS, as Microsoft Graph
 * v1.0 documents `List signIns`: AuditLog.Read.All, the P1/P2 licence error, newest first, $top at
 * most 1,000, @odata.nextLink paging, the $filter clauses it supports (and Graph's 400 for others),
 * throttling by fault injection, and the ingestion delay.
 */
import { startGraphStandIn, type GraphStandIn } from '../../dev/graph-standin/index';
import { mintAccessToken } from '../../dev/identity-standin/index';

let graph: GraphStandIn;
const USER = '5e500000-0000-4000-8000-00000000a001';
const OTHER = '5e500000-0000-4000-8000-00000000a002';
const T0 = Date.parse('2026-11-30T09:00:00Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

beforeAll(async () => {
  graph = await startGraphStandIn();
  for (let i = 0; i < 5; i++) graph.addSignIn({ userId: USER, createdDateTime: at(i) });
  graph.addSignIn({ userId: USER, createdDateTime: at(10), errorCode: 50126 });
  graph.addSignIn({ userId: OTHER, createdDateTime: at(3) });
});
afterAll(async () => {
  await graph.stop();
});

interface Page {
  '@odata.context'?: string;
  '@odata.nextLink'?: string;
  value?: Array<Record<string, unknown>>;
  error?: { code: string; message: string };
}

async function get(url: string, roles = ['AuditLog.Read.All']) {
  const response = await fetch(url.startsWith('https:') ? url : `${graph.url}${url}`, {
    headers: { authorization: `Bearer ${mintAccessToken({ roles })}` },
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Page,
  };
}
const q = (filter: string, extra = '') =>
  `/v1.0/auditLogs/signIns?$filter=${encodeURIComponent(filter)}${extra}`;

describe('GET /v1.0/auditLogs/signIns', () => {
  it('answers the documented shape, newest first, filtered by user and time', async () => {
    const r = await get(
      q(`userId eq '${USER}' and createdDateTime ge ${at(1)} and createdDateTime le ${at(3)}`),
    );
    expect(r.status).toBe(200);
    expect(r.body['@odata.context']).toBe(
      'https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns',
    );
    expect(r.body.value?.map((e) => e.createdDateTime)).toEqual([at(3), at(2), at(1)]);
    expect(r.body.value?.[0]).toMatchObject({
      userId: USER,
      status: { errorCode: 0 },
      isInteractive: true,
      conditionalAccessStatus: 'notApplied',
      appliedConditionalAccessPolicies: [],
    });
    expect(r.body['@odata.nextLink']).toBeUndefined();
  });

  it('filters on status/errorCode and gt/lt', async () => {
    const failed = await get(q(`userId eq '${USER}' and status/errorCode ne 0`));
    expect(failed.body.value?.map((e) => (e.status as { errorCode: number }).errorCode)).toEqual([
      50126,
    ]);
    const open = await get(
      q(`userId eq '${USER}' and createdDateTime gt ${at(0)} and createdDateTime lt ${at(4)}`),
    );
    expect(open.body.value).toHaveLength(3);
  });

  it('pages with $top and an absolute @odata.nextLink until the last page', async () => {
    const seen: unknown[] = [];
    let r = await get(q(`userId eq '${USER}'`, '&$top=2'));
    let pages = 1;
    seen.push(...(r.body.value ?? []).map((e) => e.id));
    while (r.body['@odata.nextLink'] !== undefined) {
      expect(r.body['@odata.nextLink']).toMatch(
        /^https:\/\/127\.0\.0\.1:\d+\/v1\.0\/auditLogs\/signIns\?.*\$skiptoken=/,
      );
      r = await get(r.body['@odata.nextLink']);
      seen.push(...(r.body.value ?? []).map((e) => e.id));
      pages += 1;
    }
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(6);
  });

  it('refuses what Graph refuses: other filters, $top over 1,000, quoted times, other methods', async () => {
    expect((await get(q(`userPrincipalName eq 'x'`))).status).toBe(400);
    expect((await get(q(`userId eq '${USER}'`, '&$top=1001'))).status).toBe(400);
    expect((await get(q(`createdDateTime ge '${at(0)}'`))).status).toBe(400);
    const post = await fetch(`${graph.url}/v1.0/auditLogs/signIns`, {
      method: 'POST',
      headers: { authorization: `Bearer ${mintAccessToken({ roles: ['AuditLog.Read.All'] })}` },
      body: '{}',
    });
    expect(post.status).toBe(405);
  });

  it('needs AuditLog.Read.All, and a tenant with Entra ID P1 or P2', async () => {
    const noRole = await get(q(`userId eq '${USER}'`), ['User.Read.All']);
    expect(noRole.status).toBe(403);
    expect(noRole.body.error?.code).toBe('Authorization_RequestDenied');
    graph.setPremiumLicence(false);
    try {
      const free = await get(q(`userId eq '${USER}'`));
      expect(free.status).toBe(403);
      expect(free.body.error).toMatchObject({
        code: 'Authentication_RequestFromNonPremiumTenantOrB2CTenant',
        message: "Neither tenant is B2C or tenant doesn't have premium license",
      });
    } finally {
      graph.setPremiumLicence(true);
    }
  });

  it('throttles with 429 and Retry-After when told to', async () => {
    graph.injectFault({ operation: 'listSignIns', status: 429, retryAfterSeconds: 7 });
    const r = await get(q(`userId eq '${USER}'`));
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('7');
    expect((await get(q(`userId eq '${USER}'`))).status).toBe(200);
  });

  it('shows an entry only after the ingestion delay', async () => {
    const late = '5e500000-0000-4000-8000-00000000a003';
    graph.setSignInIngestionDelayMs(300);
    graph.addSignIn({ userId: late });
    graph.setSignInIngestionDelayMs(0);
    expect((await get(q(`userId eq '${late}'`))).body.value).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect((await get(q(`userId eq '${late}'`))).body.value).toHaveLength(1);
  });
});

describe('GET /beta/auditLogs/signIns', () => {
  const BETA_USER = '5e500000-0000-4000-8000-00000000b001';
  const b = (filter: string, extra = '') =>
    `/beta/auditLogs/signIns?$filter=${encodeURIComponent(filter)}${extra}`;
  const BOTH = "signInEventTypes/any(t: t eq 'interactiveUser' or t eq 'nonInteractiveUser')";
  beforeAll(() => {
    graph.addSignIn({
      userId: BETA_USER,
      createdDateTime: at(20),
      authenticationRequirement: 'multiFactorAuthentication',
      caeToken: true,
    });
    graph.addSignIn({ userId: BETA_USER, createdDateTime: at(21), isInteractive: false });
  });

  it('states MFA, CAE and the sign-in kind; v1.0 has none of those properties', async () => {
    const beta = await get(b(`userId eq '${BETA_USER}'`));
    expect(beta.status).toBe(200);
    expect(beta.body['@odata.context']).toBe(
      'https://graph.microsoft.com/beta/$metadata#auditLogs/signIns',
    );
    // Interactive only unless the filter asks for more, as the beta resource documents.
    expect(beta.body.value).toHaveLength(1);
    expect(beta.body.value?.[0]).toMatchObject({
      authenticationRequirement: 'multiFactorAuthentication',
      authenticationProcessingDetails: [{ key: 'Is CAE Token', value: 'True' }],
      signInEventTypes: ['interactiveUser'],
    });
    const v1 = await get(q(`userId eq '${BETA_USER}'`));
    expect(v1.body.value).toHaveLength(1);
    for (const property of [
      'authenticationRequirement',
      'authenticationProcessingDetails',
      'signInEventTypes',
    ])
      expect(v1.body.value?.[0]).not.toHaveProperty(property);
  });

  it('lists non-interactive sign-ins when the filter asks, and pages on beta', async () => {
    const both = await get(b(`userId eq '${BETA_USER}' and ${BOTH}`, '&$top=1'));
    expect(both.body.value?.[0]).toMatchObject({
      isInteractive: false,
      signInEventTypes: ['nonInteractiveUser'],
    });
    const next = both.body['@odata.nextLink'] ?? '';
    expect(new URL(next).pathname).toBe('/beta/auditLogs/signIns');
    const rest = await get(next);
    expect(rest.body.value?.[0]).toMatchObject({ isInteractive: true });
    const only = await get(
      b(`(signInEventTypes/any(t: t eq 'nonInteractiveUser')) and userId eq '${BETA_USER}'`),
    );
    expect(only.body.value?.map((e) => e.isInteractive)).toEqual([false]);
  });

  it('refuses the kind filter on v1.0, other kinds mixed in, and other beta paths', async () => {
    expect((await get(q(`userId eq '${BETA_USER}' and ${BOTH}`))).status).toBe(400);
    const mixed = "signInEventTypes/any(t: t eq 'interactiveUser' or t eq 'servicePrincipal')";
    expect((await get(b(mixed))).status).toBe(400);
    expect((await get('/beta/users')).status).toBe(400);
  });
});
