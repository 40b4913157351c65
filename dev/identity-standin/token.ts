import { randomUUID } from 'node:crypto';

/**
 * JWT-shaped, UNSIGNED access tokens for local stand-ins. The header says RS256 like a real Entra
 * token, but the signature is a fixed dummy: nothing in this repository may treat these tokens as
 * proof of anything outside tests.
 */

/** Graph's resource URI and its well-known application id (both are valid token audiences). */
export const GRAPH_RESOURCE = 'https://graph.microsoft.com';
export const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';

/** Fixed tenant id of the stand-in "contoso" tenant. */
export const STANDIN_TENANT_ID = 'c0a70500-0000-4000-8000-00000000c0de';
/** Client (application) id of the stand-in's system-assigned managed identity. */
export const SYSTEM_ASSIGNED_CLIENT_ID = '5a5a0000-0000-4000-8000-00000000a11d';
/** Object (principal) id of the stand-in's system-assigned managed identity. */
export const SYSTEM_ASSIGNED_OBJECT_ID = '5a5a0000-0000-4000-8000-00000000b0b1';

export const DUMMY_SIGNATURE = 'ZGV2LXN0YW5kLWluLXVuc2lnbmVk'; // base64url("dev-stand-in-unsigned")

export interface AccessTokenClaims {
  aud: string;
  iss: string;
  iat: number;
  nbf: number;
  exp: number;
  /** Application permissions (app roles) granted to the caller, e.g. `User.Read.All`. */
  roles?: string[];
  oid: string;
  sub: string;
  appid: string;
  azp?: string;
  tid: string;
  idtyp?: string;
  ver?: string;
  uti?: string;
  [claim: string]: unknown;
}

export interface MintTokenOptions {
  /** Audience; default `https://graph.microsoft.com`. */
  aud?: string;
  /** App roles; default none (the claim is omitted when empty, as Entra does). */
  roles?: string[];
  /** Client id of the caller; default the system-assigned identity's. */
  appid?: string;
  /** Object id of the caller; default derived from appid. */
  oid?: string;
  tid?: string;
  /** Lifetime in seconds from `now` (negative for an already expired token); default 3600. */
  lifetimeSeconds?: number;
  /** Issue time; default now. */
  now?: Date;
  /** Extra or overriding claims. */
  extra?: Record<string, unknown>;
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Object id used for a user-assigned identity when none is configured: stable per client id. */
export function objectIdFor(appid: string): string {
  if (appid.toLowerCase() === SYSTEM_ASSIGNED_CLIENT_ID) return SYSTEM_ASSIGNED_OBJECT_ID;
  // Deterministic, GUID-shaped, visibly different from the client id.
  const hex = Buffer.from(appid.toLowerCase()).toString('hex').padEnd(32, '0').slice(-32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** Builds an unsigned JWT-shaped access token. */
export function mintAccessToken(options: MintTokenOptions = {}): string {
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const appid = options.appid ?? SYSTEM_ASSIGNED_CLIENT_ID;
  const oid = options.oid ?? objectIdFor(appid);
  const tid = options.tid ?? STANDIN_TENANT_ID;
  const claims: AccessTokenClaims = {
    aud: options.aud ?? GRAPH_RESOURCE,
    iss: `https://sts.windows.net/${tid}/`,
    iat: now,
    nbf: now,
    exp: now + (options.lifetimeSeconds ?? 3600),
    ...(options.roles && options.roles.length > 0 ? { roles: [...options.roles] } : {}),
    oid,
    sub: oid,
    appid,
    tid,
    idtyp: 'app',
    ver: '1.0',
    uti: randomUUID().replace(/-/g, '').slice(0, 22),
    ...options.extra,
  };
  const header = { typ: 'JWT', alg: 'RS256', kid: 'dev-stand-in-unsigned' };
  return `${b64url(header)}.${b64url(claims)}.${DUMMY_SIGNATURE}`;
}

/**
 * Decodes the payload of a JWT-shaped token WITHOUT verifying any signature. Returns undefined when
 * the token is not three base64url segments with a JSON object payload.
 */
export function decodeAccessToken(token: string): AccessTokenClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((part) => !/^[A-Za-z0-9_-]*$/.test(part))) return undefined;
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString('utf8'));
    const payload: unknown = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8'));
    if (!isObject(header) || !isObject(payload)) return undefined;
    return payload as AccessTokenClaims;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
