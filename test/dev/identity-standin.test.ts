import { ManagedIdentityCredential } from '@azure/identity';
import {
  API_VERSION,
  GRAPH_RESOURCE,
  SYSTEM_ASSIGNED_CLIENT_ID,
  STANDIN_TENANT_ID,
  decodeAccessToken,
  startManagedIdentityStandIn,
  type ManagedIdentityStandIn,
} from '../../dev/identity-standin/index';

const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
const USER_ASSIGNED = '0a1b2c3d-0000-4000-8000-00000000beef';

// msal-node picks the managed identity source (and so the endpoint) once per module registry, so
// this file uses a single stand-in and sets the environment before the first credential is used.
let mi: ManagedIdentityStandIn;
const savedEnv = { ...process.env };

beforeAll(async () => {
  mi = await startManagedIdentityStandIn({ roles: ['User.Read.All', 'User.RevokeSessions.All'] });
  Object.assign(process.env, mi.envFor());
});

afterAll(async () => {
  await mi.stop();
  process.env = savedEnv;
});

async function rawTokenRequest(query: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${mi.endpoint}?${query}`, { headers });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('managed identity stand-in', () => {
  it('serves the real ManagedIdentityCredential (system-assigned)', async () => {
    const before = mi.requests.length;
    const credential = new ManagedIdentityCredential();
    const token = await credential.getToken(GRAPH_SCOPE);

    expect(token.token.split('.')).toHaveLength(3);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now() + 23 * 3600 * 1000);
    const claims = decodeAccessToken(token.token);
    expect(claims).toMatchObject({
      aud: GRAPH_RESOURCE,
      appid: SYSTEM_ASSIGNED_CLIENT_ID,
      tid: STANDIN_TENANT_ID,
      roles: ['User.Read.All', 'User.RevokeSessions.All'],
      idtyp: 'app',
    });
    expect(typeof claims?.oid).toBe('string');
    expect(claims!.exp - claims!.iat).toBe(86_400);

    const request = mi.requests[before];
    expect(request).toMatchObject({ resource: 'https://graph.microsoft.com', status: 200 });
    expect(request?.clientId).toBeUndefined();
    expect(request?.at).toBeInstanceOf(Date);
  });

  it('serves a user-assigned identity with its own roles', async () => {
    mi.setRoles(['User.EnableDisableAccount.All', 'User.Read.All'], USER_ASSIGNED);
    const credential = new ManagedIdentityCredential({ clientId: USER_ASSIGNED });
    const token = await credential.getToken(GRAPH_SCOPE);

    const claims = decodeAccessToken(token.token);
    expect(claims?.appid).toBe(USER_ASSIGNED);
    expect(claims?.roles).toEqual(['User.EnableDisableAccount.All', 'User.Read.All']);
    expect(claims?.oid).not.toBe(decodeAccessToken(mi.issueToken())?.oid);
    expect(mi.requests.at(-1)).toMatchObject({ clientId: USER_ASSIGNED, status: 200 });
    expect(mi.rolesFor(USER_ASSIGNED)).toEqual(['User.EnableDisableAccount.All', 'User.Read.All']);
    expect(mi.rolesFor()).toEqual(['User.Read.All', 'User.RevokeSessions.All']);
  });

  it('lets every getToken reach the endpoint when tokens live under 5 minutes', async () => {
    const clientId = '0a1b2c3d-0000-4000-8000-000000005407';
    mi.setTokenLifetimeSeconds(240);
    try {
      const before = mi.requests.length;
      mi.setRoles(['User.Read.All'], clientId);
      const first = await new ManagedIdentityCredential({ clientId }).getToken(GRAPH_SCOPE);
      mi.setRoles(['Directory.ReadWrite.All'], clientId);
      const second = await new ManagedIdentityCredential({ clientId }).getToken(GRAPH_SCOPE);
      expect(mi.requests.length - before).toBe(2);
      expect(decodeAccessToken(first.token)?.roles).toEqual(['User.Read.All']);
      expect(decodeAccessToken(second.token)?.roles).toEqual(['Directory.ReadWrite.All']);
    } finally {
      mi.setTokenLifetimeSeconds(86_400);
    }
  });

  it('answers the App Service protocol shape', async () => {
    const { status, body } = await rawTokenRequest(
      `api-version=${API_VERSION}&resource=${encodeURIComponent('https://graph.microsoft.com/')}`,
      { 'x-identity-header': mi.header },
    );
    expect(status).toBe(200);
    expect(body).toMatchObject({
      resource: 'https://graph.microsoft.com/',
      token_type: 'Bearer',
      client_id: SYSTEM_ASSIGNED_CLIENT_ID,
    });
    expect(body.expires_on).toMatch(/^\d{10}$/);
    expect(decodeAccessToken(String(body.access_token))?.aud).toBe(GRAPH_RESOURCE);
  });

  it('rejects requests App Service would reject', async () => {
    const ok = `api-version=${API_VERSION}&resource=${encodeURIComponent(GRAPH_RESOURCE)}`;
    const missing = await rawTokenRequest(ok);
    expect(missing.status).toBe(401);
    expect(missing.body).toMatchObject({ statusCode: 401 });
    expect(typeof missing.body.message).toBe('string');
    expect(typeof missing.body.correlationId).toBe('string');

    expect((await rawTokenRequest(ok, { 'x-identity-header': 'wrong' })).status).toBe(401);
    const header = { 'x-identity-header': mi.header };
    expect((await rawTokenRequest(`api-version=2017-09-01&resource=x`, header)).status).toBe(400);
    expect((await rawTokenRequest(`api-version=${API_VERSION}`, header)).status).toBe(400);

    const post = await fetch(`${mi.endpoint}?${ok}`, { method: 'POST', headers: header });
    expect(post.status).toBe(405);
    await post.arrayBuffer();
    const elsewhere = await fetch(mi.endpoint.replace('/msi/token', '/other'), { headers: header });
    expect(elsewhere.status).toBe(404);
    await elsewhere.arrayBuffer();
  });

  it('can be down (500 JSON) or unreachable (socket destroyed)', async () => {
    const ok = `api-version=${API_VERSION}&resource=${encodeURIComponent(GRAPH_RESOURCE)}`;
    const header = { 'x-identity-header': mi.header };
    mi.setDown(true);
    try {
      const down = await rawTokenRequest(ok, header);
      expect(down.status).toBe(500);
      expect(down.body).toMatchObject({ statusCode: 500 });
    } finally {
      mi.setDown(false);
    }
    mi.setUnreachable(true);
    try {
      await expect(fetch(`${mi.endpoint}?${ok}`, { headers: header })).rejects.toThrow();
      expect(mi.requests.at(-1)?.status).toBe(0);
    } finally {
      mi.setUnreachable(false);
    }
    expect((await rawTokenRequest(ok, header)).status).toBe(200);
  });

  it('envFor returns exactly IDENTITY_ENDPOINT and IDENTITY_HEADER', () => {
    expect(mi.envFor('some-client')).toEqual({
      IDENTITY_ENDPOINT: mi.endpoint,
      IDENTITY_HEADER: mi.header,
    });
    expect(mi.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/msi\/token$/);
  });

  it('refuses client ids that are not attached when a list is configured', async () => {
    const restricted = await startManagedIdentityStandIn({
      userAssignedClientIds: ['attached-id'],
    });
    try {
      const header = { 'x-identity-header': restricted.header };
      const base = `${restricted.endpoint}?api-version=${API_VERSION}&resource=${GRAPH_RESOURCE}`;
      const attached = await fetch(`${base}&client_id=attached-id`, { headers: header });
      expect(attached.status).toBe(200);
      await attached.arrayBuffer();
      const stranger = await fetch(`${base}&client_id=stranger`, { headers: header });
      expect(stranger.status).toBe(400);
      await stranger.arrayBuffer();
      restricted.envFor('stranger');
      const registered = await fetch(`${base}&client_id=stranger`, { headers: header });
      expect(registered.status).toBe(200);
      await registered.arrayBuffer();
    } finally {
      await restricted.stop();
    }
    await expect(fetch(restricted.endpoint)).rejects.toThrow();
  });
});
