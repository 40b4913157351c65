import { ManagedIdentityCredential } from '@azure/identity';
import { Client, GraphError, RetryHandlerOptions } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials';
import {
  ADMIN_ID,
  ALICE_ID,
  ALICE_UPN,
  BOB_ID,
  BOB_UPN,
  BREAKGLASS_UPN,
  DEFAULT_SESSIONS_VALID_FROM,
  DOLLAR_ID,
  DOLLAR_UPN,
  GUEST_ID,
  GUEST_UPN,
  MESSAGES,
  SYNCED_ID,
  SYNCED_UPN,
  defaultSeed,
  latencySampler,
  routeGraphRequest,
  startGraphStandIn,
  type GraphStandIn,
} from '../../dev/graph-standin/index';
import {
  mintAccessToken,
  startManagedIdentityStandIn,
  type ManagedIdentityStandIn,
} from '../../dev/identity-standin/index';

const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
const LEAST_PRIVILEGE = [
  'User.Read.All',
  'User.RevokeSessions.All',
  'User.EnableDisableAccount.All',
  'User-PasswordProfile.ReadWrite.All',
];
/** A user-assigned identity that may only read users. */
const READ_ONLY_CLIENT_ID = '0a1b2c3d-0000-4000-8000-0000000000ad';

let mi: ManagedIdentityStandIn;
let graph: GraphStandIn;
const savedEnv = { ...process.env };

beforeAll(async () => {
  // One identity stand-in for the whole file: msal-node fixes the endpoint at the first request.
  mi = await startManagedIdentityStandIn({ roles: LEAST_PRIVILEGE });
  mi.setRoles(['User.Read.All'], READ_ONLY_CLIENT_ID);
  Object.assign(process.env, mi.envFor());
  graph = await startGraphStandIn();
});

afterAll(async () => {
  await graph.stop();
  await mi.stop();
  process.env = savedEnv;
});

beforeEach(() => graph.reset());

/** A real Graph client authenticating with a real ManagedIdentityCredential. */
function graphClient(clientId?: string): Client {
  const credential = clientId
    ? new ManagedIdentityCredential({ clientId })
    : new ManagedIdentityCredential();
  const authProvider = new TokenCredentialAuthenticationProvider(credential, {
    scopes: [GRAPH_SCOPE],
  });
  return Client.initWithMiddleware({
    authProvider,
    baseUrl: graph.url,
    customHosts: new Set([graph.hostname]),
  });
}

/** Per-request retry policy: no base delay (Retry-After still wins), at most `maxRetries`. */
const retryOptions = (maxRetries: number) => [new RetryHandlerOptions(0, maxRetries)];

async function graphError(promise: Promise<unknown>): Promise<GraphError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof GraphError) return error;
    throw error;
  }
  throw new Error('expected a GraphError');
}

async function rawFetch(path: string, init: RequestInit = {}) {
  const response = await fetch(`${graph.url}${path}`, init);
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? (JSON.parse(text) as { error?: { code: string; message: string } }) : undefined,
  };
}

describe('Graph stand-in with the real Graph client and ManagedIdentityCredential', () => {
  const client = () => graphClient();

  it('GET user honours $select and returns the default property set without it', async () => {
    const selected = (await client()
      .api(`/users/${ALICE_ID}`)
      .select(['id', 'accountEnabled', 'signInSessionsValidFromDateTime', 'onPremisesSyncEnabled'])
      .get()) as Record<string, unknown>;
    expect(selected).toEqual({
      '@odata.context':
        'https://graph.microsoft.com/v1.0/$metadata#users(id,accountEnabled,signInSessionsValidFromDateTime,onPremisesSyncEnabled)/$entity',
      id: ALICE_ID,
      accountEnabled: true,
      signInSessionsValidFromDateTime: DEFAULT_SESSIONS_VALID_FROM,
      onPremisesSyncEnabled: null,
    });

    // By UPN, case-insensitively; default set excludes the $select-only properties.
    const plain = (await client()
      .api(`/users/${encodeURIComponent(ALICE_UPN.toUpperCase())}`)
      .get()) as Record<string, unknown>;
    expect(plain).toMatchObject({ id: ALICE_ID, userPrincipalName: ALICE_UPN, mail: ALICE_UPN });
    expect(Object.keys(plain)).toEqual([
      '@odata.context',
      'businessPhones',
      'displayName',
      'givenName',
      'jobTitle',
      'mail',
      'mobilePhone',
      'officeLocation',
      'preferredLanguage',
      'surname',
      'userPrincipalName',
      'id',
    ]);
    expect(plain).not.toHaveProperty('signInSessionsValidFromDateTime');
    expect(plain).not.toHaveProperty('accountEnabled');

    const request = graph.requests.at(-1);
    expect(request?.headers.authorization).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    expect(request?.operation).toBe('getUser');
    expect(request?.userId).toBe(ALICE_ID);
  });

  it('rejects an unknown $select property like Graph', async () => {
    const error = await graphError(client().api(`/users/${ALICE_ID}`).select('nope').get());
    expect(error.statusCode).toBe(400);
    expect(error.message).toBe(MESSAGES.unknownSelect('nope'));
  });

  it('revokeSignInSessions returns {value: true} and moves signInSessionsValidFromDateTime', async () => {
    const before = Date.now();
    const result: unknown = await client().api(`/users/${BOB_UPN}/revokeSignInSessions`).post({});
    expect(result).toEqual({
      '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean',
      value: true,
    });
    const user = (await client()
      .api(`/users/${BOB_ID}`)
      .select('signInSessionsValidFromDateTime')
      .get()) as { signInSessionsValidFromDateTime: string };
    expect(user.signInSessionsValidFromDateTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Date.parse(user.signInSessionsValidFromDateTime)).toBeGreaterThanOrEqual(
      Math.floor(before / 1000) * 1000,
    );
    expect(graph.getUser(BOB_ID)?.signInSessionsValidFromDateTime).toBe(
      user.signInSessionsValidFromDateTime,
    );
    expect(graph.writes()).toHaveLength(1);
    expect(graph.writes()[0]).toMatchObject({ method: 'POST', operation: 'revoke', status: 200 });
  });

  it('PATCH accountEnabled=false disables the account (204)', async () => {
    const result: unknown = await client()
      .api(`/users/${ALICE_ID}`)
      .patch({ accountEnabled: false });
    expect(result).toBeFalsy();
    expect(graph.getUser(ALICE_UPN)?.accountEnabled).toBe(false);
    expect(graph.writes()[0]).toMatchObject({
      method: 'PATCH',
      status: 204,
      body: { accountEnabled: false },
    });
    await client().api(`/users/${ALICE_ID}`).patch({ accountEnabled: true });
  });

  it('addresses a guest through %23EXT%23; an unencoded # truncates the path and 404s', async () => {
    const guest = (await client()
      .api(`/users/${encodeURIComponent(GUEST_UPN)}`)
      .select(['id', 'userType'])
      .get()) as Record<string, unknown>;
    expect(guest).toMatchObject({ id: GUEST_ID, userType: 'Guest' });
    expect(graph.requests.at(-1)?.path).toContain('%23EXT%23');

    // Revoke for a guest still answers 200 (no effect at the home tenant).
    await client()
      .api(`/users/${encodeURIComponent(GUEST_UPN)}/revokeSignInSessions`)
      .post({});

    const error = await graphError(client().api(`/users/${GUEST_UPN}`).get());
    expect(error.statusCode).toBe(404);
    expect(error.code).toBe('Request_ResourceNotFound');
    expect(error.message).toBe(MESSAGES.notFound('carol_fabrikam.com'));
    expect(graph.requests.at(-1)?.path).toBe('/v1.0/users/carol_fabrikam.com');
  });

  it("addresses a $ UPN as users('...'); the plain path is a 400 like Graph", async () => {
    const user = (await client().api(`/users('${DOLLAR_UPN}')`).select('id').get()) as Record<
      string,
      unknown
    >;
    expect(user).toMatchObject({ id: DOLLAR_ID });
    await client().api(`/users('${DOLLAR_UPN}')/revokeSignInSessions`).post({});
    expect(graph.getUser(DOLLAR_ID)?.signInSessionsValidFromDateTime).not.toBe(
      DEFAULT_SESSIONS_VALID_FROM,
    );
    // The key form works for any key, with quotes doubled.
    const byId = (await client().api(`/users('${ALICE_ID}')`).get()) as Record<string, unknown>;
    expect(byId.id).toBe(ALICE_ID);
    graph.addUser({
      id: '0b1e0000-0000-4000-8000-0000000000aa',
      userPrincipalName: "o'hara@contoso.com",
    });
    const quoted = (await client().api(`/users('o''hara@contoso.com')`).get()) as Record<
      string,
      unknown
    >;
    expect(quoted.userPrincipalName).toBe("o'hara@contoso.com");

    const error = await graphError(client().api(`/users/${DOLLAR_UPN}`).get());
    expect(error.statusCode).toBe(400);
    expect(error.code).toBe('BadRequest');
    expect(error.message).toBe(MESSAGES.collectionSegment('users'));
  });

  it('answers 401 InvalidAuthenticationToken without a usable token', async () => {
    const none = await rawFetch(`/v1.0/users/${ALICE_ID}`);
    expect(none.status).toBe(401);
    expect(none.body?.error?.code).toBe('InvalidAuthenticationToken');
    expect(none.body?.error?.message).toBe(MESSAGES.tokenEmpty);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect(none.body).toMatchObject({
      error: { innerError: { 'request-id': none.headers.get('request-id') } },
    });

    const cases: Array<[string, string]> = [
      ['garbage', MESSAGES.tokenMalformed],
      [mintAccessToken({ roles: LEAST_PRIVILEGE, lifetimeSeconds: -3600 }), MESSAGES.tokenExpired],
      [
        mintAccessToken({ roles: LEAST_PRIVILEGE, aud: 'https://management.azure.com' }),
        MESSAGES.tokenAudience,
      ],
    ];
    for (const [token, message] of cases) {
      const response = await rawFetch(`/v1.0/users/${ALICE_ID}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(401);
      expect(response.body?.error).toMatchObject({ code: 'InvalidAuthenticationToken', message });
    }
    const valid = await rawFetch(`/v1.0/users/${ALICE_ID}`, {
      headers: { authorization: `Bearer ${mintAccessToken({ roles: ['User.Read.All'] })}` },
    });
    expect(valid.status).toBe(200);
  });

  it('answers 403 Authorization_RequestDenied when the app role is missing', async () => {
    const readOnly = graphClient(READ_ONLY_CLIENT_ID);
    await expect(readOnly.api(`/users/${BOB_ID}`).get()).resolves.toMatchObject({ id: BOB_ID });
    for (const call of [
      readOnly.api(`/users/${BOB_ID}/revokeSignInSessions`).post({}),
      readOnly.api(`/users/${BOB_ID}`).patch({ accountEnabled: false }),
      readOnly.api(`/users/${BOB_ID}`).patch({
        passwordProfile: { password: 'Xk9#mQ2$vL7!', forceChangePasswordNextSignIn: true },
      }),
    ]) {
      const error = await graphError(call);
      expect(error.statusCode).toBe(403);
      expect(error.code).toBe('Authorization_RequestDenied');
      expect(error.message).toBe('Insufficient privileges to complete the operation.');
    }
    expect(graph.getUser(BOB_ID)?.accountEnabled).toBe(true);
    expect(graph.passwordResetCount(BOB_ID)).toBe(0);

    // User.EnableDisableAccount.All needs a read permission next to it (documented combination).
    const token = mintAccessToken({ roles: ['User.EnableDisableAccount.All'] });
    const alone = await rawFetch(`/v1.0/users/${BOB_ID}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ accountEnabled: false }),
    });
    expect(alone.status).toBe(403);
  });

  it('resets a member password, refuses admins (403) and weak passwords (400)', async () => {
    const password = 'Xk9#mQ2$vL7!pR4';
    await client()
      .api(`/users/${ALICE_ID}`)
      .patch({ passwordProfile: { password, forceChangePasswordNextSignIn: true } });
    expect(graph.lastPasswordOf(ALICE_UPN)).toBe(password);
    expect(graph.passwordResetCount(ALICE_ID)).toBe(1);
    expect(graph.getUser(ALICE_ID)?.forceChangePasswordNextSignIn).toBe(true);
    const selected = (await client()
      .api(`/users/${ALICE_ID}`)
      .select('passwordProfile')
      .get()) as Record<string, unknown>;
    expect(selected.passwordProfile).toBeNull();

    for (const upn of [graph.getUser(ADMIN_ID)?.userPrincipalName ?? '', BREAKGLASS_UPN]) {
      const error = await graphError(
        client()
          .api(`/users/${upn}`)
          .patch({ passwordProfile: { password, forceChangePasswordNextSignIn: true } }),
      );
      expect(error.statusCode).toBe(403);
      expect(error.code).toBe('Authorization_RequestDenied');
      expect(graph.lastPasswordOf(upn)).toBeUndefined();
    }
    // Disabling an admin is a sensitive action too.
    const disableAdmin = await graphError(
      client().api(`/users/${ADMIN_ID}`).patch({ accountEnabled: false }),
    );
    expect(disableAdmin.statusCode).toBe(403);
    graph.setAppDirectoryRole('Privileged Authentication Administrator');
    try {
      await client().api(`/users/${ADMIN_ID}`).patch({ accountEnabled: false });
      expect(graph.getUser(ADMIN_ID)?.accountEnabled).toBe(false);
      await client().api(`/users/${ADMIN_ID}`).patch({ accountEnabled: true });
    } finally {
      graph.setAppDirectoryRole('User Administrator');
    }

    for (const weak of ['Short1!', 'alllowercaseletters', 'lowercase123456']) {
      const error = await graphError(
        client()
          .api(`/users/${BOB_ID}`)
          .patch({ passwordProfile: { password: weak } }),
      );
      expect(error.statusCode).toBe(400);
      expect(error.code).toBe('Request_BadRequest');
      expect(error.message).toBe(MESSAGES.passwordComplexity);
    }
    expect(graph.passwordResetCount(BOB_ID)).toBe(0);
  });

  it('refuses writes to a synced (on-premises mastered) user with 400', async () => {
    for (const body of [
      { accountEnabled: false },
      { passwordProfile: { password: 'Xk9#mQ2$vL7!pR4', forceChangePasswordNextSignIn: true } },
    ]) {
      const error = await graphError(client().api(`/users/${SYNCED_UPN}`).patch(body));
      expect(error.statusCode).toBe(400);
      expect(error.code).toBe('Request_BadRequest');
      expect(error.message).toBe(MESSAGES.onPremMastered);
    }
    expect(graph.getUser(SYNCED_ID)).toMatchObject({ accountEnabled: true });
    // Revoking sessions of a synced user is a cloud operation and works.
    await client().api(`/users/${SYNCED_ID}/revokeSignInSessions`).post({});
  });

  it('answers 404 Request_ResourceNotFound for an unknown user', async () => {
    const missing = 'nobody@contoso.com';
    const error = await graphError(client().api(`/users/${missing}`).get());
    expect(error.statusCode).toBe(404);
    expect(error.code).toBe('Request_ResourceNotFound');
    expect(error.message).toBe(
      "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property objects are not present.",
    );
    expect(error.requestId).toBe(graph.requests.at(-1)?.requestId);
    const revoke = await graphError(
      client().api('/users/3f2504e0-4f89-41d3-9a0c-0305e82c3301/revokeSignInSessions').post({}),
    );
    expect(revoke.statusCode).toBe(404);
  });

  it('surfaces a 429 with Retry-After when retries are off, and has no effect', async () => {
    const validFrom = graph.getUser(BOB_ID)?.signInSessionsValidFromDateTime;
    graph.injectFault({ operation: 'revoke', status: 429, retryAfterSeconds: 7 });
    const error = await graphError(
      client()
        .api(`/users/${BOB_ID}/revokeSignInSessions`)
        .middlewareOptions(retryOptions(0))
        .post({}),
    );
    expect(error.statusCode).toBe(429);
    expect(error.code).toBe('TooManyRequests');
    expect(error.headers?.get('retry-after')).toBe('7');
    expect(graph.getUser(BOB_ID)?.signInSessionsValidFromDateTime).toBe(validFrom);
    expect(graph.requests).toHaveLength(1);
    expect(graph.requests[0]).toMatchObject({ status: 429, fault: 'status' });
  });

  it('lets the Graph client retry after Retry-After and then succeed', async () => {
    const fault = graph.injectFault({
      operation: 'patch',
      userKey: BOB_UPN,
      status: 503,
      retryAfterSeconds: 0.05,
    });
    await client()
      .api(`/users/${BOB_ID}`)
      .middlewareOptions(retryOptions(3))
      .patch({ accountEnabled: false });
    expect(fault.hits).toBe(1);
    expect(fault.remaining).toBe(0);
    expect(graph.requests.map((r) => r.status)).toEqual([503, 204]);
    expect(graph.getUser(BOB_ID)?.accountEnabled).toBe(false);
    await client().api(`/users/${BOB_ID}`).patch({ accountEnabled: true });
  });

  it('scopes faults by operation and user, supports reset, delay and Infinity', async () => {
    const always = graph.injectFault({ userKey: ALICE_ID, status: 500, times: Infinity });
    await expect(client().api(`/users/${BOB_ID}`).get()).resolves.toMatchObject({ id: BOB_ID });
    for (let i = 0; i < 2; i += 1) {
      const error = await graphError(
        client().api(`/users/${ALICE_UPN}`).middlewareOptions(retryOptions(0)).get(),
      );
      expect(error.statusCode).toBe(500);
    }
    expect(always.remaining).toBe(Infinity);
    always.remove();
    await expect(client().api(`/users/${ALICE_UPN}`).get()).resolves.toMatchObject({
      id: ALICE_ID,
    });

    graph.injectFault({ operation: 'getUser', kind: 'reset' });
    await expect(client().api(`/users/${ALICE_ID}`).get()).rejects.toThrow();
    expect(graph.requests.at(-1)).toMatchObject({ status: 0, fault: 'reset' });

    graph.injectFault({ kind: 'delay', ms: 150 });
    const started = Date.now();
    await client().api(`/users/${ALICE_ID}`).get();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(graph.requests.at(-1)).toMatchObject({ status: 200, fault: 'delay' });
  });

  it('throttles writes with a token bucket (429 TooManyRequests + Retry-After)', async () => {
    graph.throttle({ writesPerWindow: 2, windowMs: 60_000, retryAfterSeconds: 3 });
    const revoke = () =>
      client()
        .api(`/users/${BOB_ID}/revokeSignInSessions`)
        .middlewareOptions(retryOptions(0))
        .post({});
    await revoke();
    await revoke();
    const error = await graphError(revoke());
    expect(error.statusCode).toBe(429);
    expect(error.headers?.get('retry-after')).toBe('3');
    expect(graph.requests.at(-2)?.status).toBe(200);
    expect(graph.requests.at(-1)).toMatchObject({ status: 429, fault: 'throttle' });
    // Reads are not write-throttled.
    await client().api(`/users/${BOB_ID}`).get();
    graph.throttle(null);
    await revoke();

    // From 80% of the quota, responses carry x-ms-throttle-limit-percentage.
    graph.throttle({ writesPerWindow: 5, windowMs: 3_600_000, retryAfterSeconds: 3 });
    const token = mintAccessToken({ roles: ['User.RevokeSessions.All'] });
    const percentages: Array<string | null> = [];
    for (let i = 0; i < 5; i += 1) {
      const response = await fetch(`${graph.url}/v1.0/users/${BOB_ID}/revokeSignInSessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      await response.arrayBuffer();
      percentages.push(response.headers.get('x-ms-throttle-limit-percentage'));
    }
    expect(percentages).toEqual([null, null, null, '0.8', '1.0']);
  });

  it('answers over-quota writes with a Retry-After drawn from a range, and counts them', async () => {
    graph.throttle({
      writesPerWindow: 1,
      windowMs: 3_600_000,
      retryAfterSeconds: { min: 5, max: 60 },
    });
    const token = mintAccessToken({ roles: ['User.RevokeSessions.All'] });
    const statuses: number[] = [];
    const retryAfters: number[] = [];
    for (let i = 0; i < 12; i += 1) {
      const response = await fetch(`${graph.url}/v1.0/users/${BOB_ID}/revokeSignInSessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      await response.arrayBuffer();
      statuses.push(response.status);
      const header = response.headers.get('retry-after');
      if (header !== null) retryAfters.push(Number(header));
    }
    expect(statuses).toEqual([200, ...Array<number>(11).fill(429)]);
    expect(graph.throttledCount()).toBe(11);
    for (const seconds of retryAfters) {
      expect(seconds).toBeGreaterThanOrEqual(5);
      expect(seconds).toBeLessThanOrEqual(60);
    }
    expect(new Set(retryAfters).size).toBeGreaterThan(1);
    graph.reset();
    expect(graph.throttledCount()).toBe(0);
  });

  it('draws latencies with the requested median and 99th percentile', () => {
    // A seeded generator (mulberry32), so the quantiles are the same on every run.
    let seed = 42;
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const sample = latencySampler({ p50Ms: 80, p99Ms: 400 }, random);
    const draws = Array.from({ length: 20_000 }, sample).sort((a, b) => a - b);
    const quantile = (q: number) => draws[Math.floor(q * draws.length)] ?? NaN;
    expect(quantile(0.5)).toBeGreaterThan(75);
    expect(quantile(0.5)).toBeLessThan(85);
    expect(quantile(0.99)).toBeGreaterThan(360);
    expect(quantile(0.99)).toBeLessThan(440);
    expect(draws.at(-1)).toBeLessThanOrEqual(2000);
    expect(() => latencySampler({ p50Ms: 100, p99Ms: 50 })).toThrow(/p50Ms <= p99Ms/);
  });

  it('delays every request by the configured latency', async () => {
    graph.setLatency({ p50Ms: 150, p99Ms: 150 });
    try {
      const started = Date.now();
      await client().api(`/users/${ALICE_ID}`).get();
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    } finally {
      graph.setLatency(null);
    }
  });

  it('sends Graph-like headers and echoes client-request-id', async () => {
    const clientRequestId = '11111111-2222-4333-8444-555555555555';
    const token = mintAccessToken({ roles: ['User.Read.All'] });
    const response = await fetch(`${graph.url}/v1.0/users/${ALICE_ID}`, {
      headers: { authorization: `Bearer ${token}`, 'client-request-id': clientRequestId },
    });
    await response.json();
    expect(response.headers.get('client-request-id')).toBe(clientRequestId);
    expect(response.headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers.get('content-type')).toMatch(
      /^application\/json;odata\.metadata=minimal;/,
    );
    expect(response.headers.get('date')).toBeTruthy();
    expect(graph.requests.at(-1)?.clientRequestId).toBe(clientRequestId);
  });

  it('answers unsupported routes and methods like Graph', async () => {
    const auth = {
      authorization: `Bearer ${mintAccessToken({ roles: ['Directory.ReadWrite.All'] })}`,
    };
    const del = await rawFetch(`/v1.0/users/${ALICE_ID}`, { method: 'DELETE', headers: auth });
    expect(del.status).toBe(405);
    const getAction = await rawFetch(`/v1.0/users/${ALICE_ID}/revokeSignInSessions`, {
      headers: auth,
    });
    expect(getAction.status).toBe(405);
    const segment = await rawFetch(`/v1.0/widgets`, { headers: auth });
    expect(segment).toMatchObject({ status: 400, body: { error: { code: 'BadRequest' } } });
    const badJson = await rawFetch(`/v1.0/users/${ALICE_ID}`, {
      method: 'PATCH',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(badJson.status).toBe(400);
    const readOnly = await rawFetch(`/v1.0/users/${ALICE_ID}`, {
      method: 'PATCH',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ signInSessionsValidFromDateTime: '2030-01-01T00:00:00Z' }),
    });
    expect(readOnly.body?.error?.message).toBe(
      MESSAGES.readOnlyProperty('signInSessionsValidFromDateTime'),
    );
    expect(routeGraphRequest('GET', '/beta/users/x').error?.status).toBe(400);
    expect(routeGraphRequest('POST', '/v1.0/users/x/microsoft.graph.revokeSignInSessions')).toEqual(
      {
        operation: 'revoke',
        key: 'x',
      },
    );
  });

  it('lists users with $select and a simple $filter', async () => {
    const list = (await client()
      .api('/users')
      .select(['id', 'userPrincipalName'])
      .filter(`userPrincipalName eq '${BOB_UPN}'`)
      .get()) as { value: unknown[] };
    expect(list.value).toEqual([{ id: BOB_ID, userPrincipalName: BOB_UPN }]);
  });

  it('can disable role enforcement', async () => {
    const graphNoRoles = await startGraphStandIn({ enforceRoles: false, users: defaultSeed() });
    try {
      const token = mintAccessToken({ roles: [] });
      const response = await fetch(`${graphNoRoles.url}/v1.0/users/${BOB_ID}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ accountEnabled: false }),
      });
      expect(response.status).toBe(204);
      expect(graphNoRoles.getUser(BOB_ID)?.accountEnabled).toBe(false);
      expect(graph.getUser(BOB_ID)?.accountEnabled).toBe(true);
    } finally {
      await graphNoRoles.stop();
    }
  });
});

describe('GET /users/$count (an advanced query: text/plain, ConsistencyLevel: eventual)', () => {
  const DISABLED_ID = 'd15ab1ed-0000-4000-8000-0000000000c0';
  const enabledUsers = () => graph.users().filter((u) => u.accountEnabled).length;
  const countRequest = (filter?: string) => {
    const request = graphClient().api('/users/$count').header('ConsistencyLevel', 'eventual');
    return filter === undefined ? request : request.filter(filter);
  };

  beforeAll(() => {
    graph.addUser({
      id: DISABLED_ID,
      userPrincipalName: 'already.gone@contoso.com',
      accountEnabled: false,
    });
  });

  it('answers the number as text/plain through the real client, filtered by accountEnabled', async () => {
    const all = graph.users().length;
    expect(enabledUsers()).toBeLessThan(all); // the directory has a disabled user to tell them apart
    expect(await countRequest().get()).toBe(String(all));
    expect(await countRequest('accountEnabled eq true').get()).toBe(String(enabledUsers()));
    expect(await countRequest('accountEnabled eq false').get()).toBe(String(all - enabledUsers()));
    // A string filter counts too, like the list.
    expect(await countRequest(`userType eq 'Guest'`).get()).toBe('1');

    const recorded = graph.requests.find((r) => r.query.$filter === 'accountEnabled eq true');
    expect(recorded).toMatchObject({ method: 'GET', operation: 'countUsers', status: 200 });
    expect(recorded?.path).toBe('/v1.0/users/$count');
    expect(recorded?.headers.consistencylevel).toBe('eventual');

    // The raw response: a bare integer, no OData envelope.
    const token = mintAccessToken({ roles: ['User.Read.All'] });
    const response = await fetch(
      `${graph.url}/v1.0/users/$count?$filter=${encodeURIComponent('accountEnabled eq true')}`,
      { headers: { authorization: `Bearer ${token}`, consistencylevel: 'Eventual' } },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain');
    expect(response.headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await response.text()).toBe(String(enabledUsers()));

    // The count follows the directory: disabling a user takes it out of the enabled count.
    const before = enabledUsers();
    await graphClient().api(`/users/${BOB_ID}`).patch({ accountEnabled: false });
    try {
      expect(await countRequest('accountEnabled eq true').get()).toBe(String(before - 1));
    } finally {
      await graphClient().api(`/users/${BOB_ID}`).patch({ accountEnabled: true });
    }
  });

  it('refuses the count without ConsistencyLevel: eventual (400 Request_UnsupportedQuery)', async () => {
    const missing = await graphError(
      graphClient().api('/users/$count').filter('accountEnabled eq true').get(),
    );
    expect(missing.statusCode).toBe(400);
    expect(missing.code).toBe('Request_UnsupportedQuery');
    expect(missing.message).toBe(MESSAGES.countNeedsEventual);
    const wrong = await graphError(
      graphClient().api('/users/$count').header('ConsistencyLevel', 'session').get(),
    );
    expect(wrong.code).toBe('Request_UnsupportedQuery');
    expect(graph.requests.map((r) => [r.operation, r.status])).toEqual([
      ['countUsers', 400],
      ['countUsers', 400],
    ]);
  });

  it('refuses filters it cannot evaluate like Graph: unknown property, wrong type, other operators', async () => {
    const unknown = await graphError(countRequest(`passwordProfile eq 'x'`).get());
    expect(unknown.statusCode).toBe(400);
    expect(unknown.code).toBe('Request_UnsupportedQuery');
    expect(unknown.message).toBe(MESSAGES.unsupportedFilter('passwordProfile'));
    const nonsense = await graphError(countRequest(`shoeSize eq '42'`).get());
    expect(nonsense.message).toBe(MESSAGES.unsupportedFilter('shoeSize'));

    // A quoted boolean is a type error in Graph's OData parser, not a match on the text "true".
    const quoted = await graphError(countRequest(`accountEnabled eq 'true'`).get());
    expect(quoted.statusCode).toBe(400);
    expect(quoted.code).toBe('BadRequest');
    expect(quoted.message).toBe(MESSAGES.incompatibleFilterTypes('Edm.Boolean', 'Edm.String'));
    const bare = await graphError(countRequest('displayName eq true').get());
    expect(bare.message).toBe(MESSAGES.incompatibleFilterTypes('Edm.String', 'Edm.Boolean'));

    const other = await graphError(countRequest('accountEnabled ne true').get());
    expect(other.statusCode).toBe(400);
    expect(other.code).toBe('BadRequest');
  });

  it('needs a read permission (User.Read.All is enough)', async () => {
    expect(
      await graphClient(READ_ONLY_CLIENT_ID)
        .api('/users/$count')
        .header('ConsistencyLevel', 'eventual')
        .get(),
    ).toBe(String(graph.users().length));
    const token = mintAccessToken({
      roles: ['User.RevokeSessions.All', 'User.EnableDisableAccount.All'],
    });
    const denied = await rawFetch('/v1.0/users/$count', {
      headers: { authorization: `Bearer ${token}`, consistencylevel: 'eventual' },
    });
    expect(denied.status).toBe(403);
    expect(denied.body?.error?.code).toBe('Authorization_RequestDenied');
    const anonymous = await rawFetch('/v1.0/users/$count', {
      headers: { consistencylevel: 'eventual' },
    });
    expect(anonymous.status).toBe(401);
  });

  it('goes through fault injection and latency like other reads, never through the write quota', async () => {
    const outage = graph.injectFault({ operation: 'countUsers', status: 503, times: 2 });
    const getOnly = graph.injectFault({ operation: 'getUser', status: 500, times: Infinity });
    for (let i = 0; i < 2; i += 1) {
      const error = await graphError(
        countRequest('accountEnabled eq true').middlewareOptions(retryOptions(0)).get(),
      );
      expect(error.statusCode).toBe(503);
      expect(error.code).toBe('serviceNotAvailable');
    }
    expect(outage.hits).toBe(2);
    expect(await countRequest('accountEnabled eq true').get()).toBe(String(enabledUsers()));
    expect(getOnly.hits).toBe(0);
    getOnly.remove();
    expect(graph.requests.map((r) => [r.status, r.fault])).toEqual([
      [503, 'status'],
      [503, 'status'],
      [200, undefined],
    ]);

    // The write quota used up: writes get 429, the count is a read and still answers.
    graph.throttle({ writesPerWindow: 1, windowMs: 3_600_000, retryAfterSeconds: 5 });
    const revoke = () =>
      graphClient()
        .api(`/users/${BOB_ID}/revokeSignInSessions`)
        .middlewareOptions(retryOptions(0))
        .post({});
    await revoke();
    expect((await graphError(revoke())).statusCode).toBe(429);
    expect(await countRequest('accountEnabled eq true').get()).toBe(String(enabledUsers()));
    expect(graph.throttledCount()).toBe(1);

    graph.setLatency({ p50Ms: 150, p99Ms: 150 });
    try {
      const started = Date.now();
      await countRequest('accountEnabled eq true').get();
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    } finally {
      graph.setLatency(null);
    }
  });

  it('routes $count before the $-segment rule, and only as the last segment of users', () => {
    expect(routeGraphRequest('GET', '/v1.0/users/$count')).toEqual({ operation: 'countUsers' });
    expect(routeGraphRequest('GET', '/v1.0/users/%24count/')).toEqual({
      operation: 'countUsers',
    });
    expect(routeGraphRequest('POST', '/v1.0/users/$count').error?.status).toBe(405);
    const after = routeGraphRequest('GET', '/v1.0/users/$count/x').error;
    expect(after?.status).toBe(400);
    expect(after?.message).toBe(MESSAGES.mustBeLastSegment('$count'));
    // Any other `$...` key is still the collection-segment error of a `$` UPN.
    expect(routeGraphRequest('GET', `/v1.0/users/${DOLLAR_UPN}`).error?.message).toBe(
      MESSAGES.collectionSegment('users'),
    );
    // A user whose key merely contains $count is a user.
    expect(routeGraphRequest('GET', '/v1.0/users/a$count@contoso.com')).toEqual({
      operation: 'getUser',
      key: 'a$count@contoso.com',
    });
  });

  it('lists users by a boolean filter too', async () => {
    const list = (await graphClient()
      .api('/users')
      .select(['id'])
      .filter('accountEnabled eq false')
      .get()) as { value: Array<{ id: string }> };
    expect(list.value.map((u) => u.id)).toEqual(
      graph
        .users()
        .filter((u) => !u.accountEnabled)
        .map((u) => u.id),
    );
    expect(list.value.map((u) => u.id)).toContain(DISABLED_ID);
  });
});
