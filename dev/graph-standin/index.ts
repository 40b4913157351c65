import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { assertDevCaTrusted, loadDevCertificates } from '../certs';
import { GRAPH_APP_ID, GRAPH_RESOURCE, decodeAccessToken } from '../identity-standin/token';
import { Directory, graphDateTime, snapshot, type DirectoryUser } from './directory';
import {
  MESSAGES,
  canReadUser,
  canReadSignIns,
  canRevokeSessions,
  canWriteAccountEnabled,
  canWriteOther,
  canWritePasswordProfile,
  mayChangeSensitiveAttributes,
  mayResetPasswords,
  passwordMeetsComplexity,
  type AppDirectoryRole,
} from './policy';
import { defaultSeed, type SeedUser } from './seed';
import {
  NO_PREMIUM_LICENCE,
  signInPage,
  toStoredSignIn,
  type SeedSignIn,
  type StoredSignIn,
  type SignInLogVersion,
} from './signIns';
import { listenOnLoopback } from '../loopback';

export * from './seed';
export type { SeedSignIn, SignInLogVersion } from './signIns';
export { graphDateTime, type DirectoryUser } from './directory';
export { MESSAGES, PERMISSIONS, passwordMeetsComplexity, type AppDirectoryRole } from './policy';

/**
 * HTTPS stand-in for the slice of Microsoft Graph v1.0 the offboarding app uses:
 *   GET   /v1.0/users/{id | userPrincipalName}[?$select=...]   (and /v1.0/users('{key}'))
 *   GET   /v1.0/users[?$select=...&$filter=prop eq 'value' | prop eq true]
 *   GET   /v1.0/users/$count[?$filter=...]   (text/plain; needs ConsistencyLevel: eventual)
 *   POST  /v1.0/users/{key}/revokeSignInSessions
 *   PATCH /v1.0/users/{key}   { accountEnabled, passwordProfile, ... }
 *   GET   /v1.0/auditLogs/signIns[?$filter=...&$top=n]   (the sign-in log, see signIns.ts)
 * with Graph's addressing rules, bearer-token checks against tokens from the identity stand-in,
 * application-permission (app role) enforcement, Graph's error bodies and headers, and fault
 * injection. It listens on 127.0.0.1 with the dev certificates: the process using it must trust the
 * dev CA (start it through `node dev/with-dev-ca.mjs`), and a Graph client must list `127.0.0.1`
 * in `customHosts`, or it sends no Authorization header to a non-Graph host.
 */

/** What a request was routed to. */
export type GraphOperation =
  'getUser' | 'listUsers' | 'countUsers' | 'revoke' | 'patch' | 'listSignIns' | 'unsupported';

export interface RecordedRequest {
  method: string;
  /** Path exactly as received (percent-encoding intact, no query string). */
  path: string;
  /** The path percent-decoded (the raw path when it cannot be decoded). */
  decodedPath: string;
  /** Raw request target: path and query as received. */
  url: string;
  /** Decoded query parameters (last value wins). */
  query: Record<string, string>;
  /** Request headers, lower-case names. */
  headers: Record<string, string>;
  /** Parsed JSON body; undefined when empty. A body that is not JSON is kept as a string. */
  body: unknown;
  /** Status answered; 0 while in flight or when the connection was reset. */
  status: number;
  requestId: string;
  clientRequestId: string;
  at: Date;
  operation: GraphOperation;
  /** Object id of the addressed user when the key resolved to one. */
  userId?: string;
  /** Set when an injected fault or the throttle answered instead of the directory. */
  fault?: 'status' | 'reset' | 'delay' | 'header' | 'throttle';
}

export type FaultOperation =
  'getUser' | 'listUsers' | 'countUsers' | 'revoke' | 'patch' | 'listSignIns' | 'any';

interface FaultScope {
  /** Which operation to fault; default 'any'. */
  operation?: FaultOperation;
  /** Only requests addressing this user (id or UPN, however the request addressed it). */
  userKey?: string;
  /** How many matching requests to fault; default 1; Infinity allowed. */
  times?: number;
}

/** Answer with an error status (429, 500, 503, 504, ...) without touching the directory. */
export interface StatusFault extends FaultScope {
  kind?: 'status';
  status: number;
  /** Adds `Retry-After` (seconds; fractions allowed, as Graph sends them). */
  retryAfterSeconds?: number;
  code?: string;
  message?: string;
}
/** Destroy the connection without answering. */
export interface ResetFault extends FaultScope {
  kind: 'reset';
}
/** Answer normally, but only after a delay. */
export interface DelayFault extends FaultScope {
  kind: 'delay';
  ms: number;
}
/** Answer normally, with these headers added (what another service in front of Graph may send). */
export interface HeaderFault extends FaultScope {
  kind: 'header';
  headers: Record<string, string>;
}
export type Fault = StatusFault | ResetFault | DelayFault | HeaderFault;

export interface FaultHandle {
  /** Matching requests faulted so far. */
  readonly hits: number;
  /** Faults left (Infinity for unlimited); 0 once used up or removed. */
  readonly remaining: number;
  remove(): void;
}

export interface ThrottleOptions {
  /**
   * Writes (revoke, PATCH) allowed per window; Graph's identity write quota is 3000 per 150 s
   * (20/s). A scaled window keeps the rate and shrinks the burst: 300 per 15 s.
   */
  writesPerWindow: number;
  windowMs: number;
  /**
   * Retry-After sent with the 429: fixed, or drawn uniformly from a range for each answer (Graph
   * sends anything from under a second to minutes, commonly 10-20 s).
   */
  retryAfterSeconds: number | { min: number; max: number };
}

/**
 * Per-request latency, log-normal like a real service's: half the requests answer within p50Ms and
 * 99 % within p99Ms; no request takes longer than maxMs (default 5 x p99Ms).
 */
export interface LatencyOptions {
  p50Ms: number;
  p99Ms: number;
  maxMs?: number;
}

/** z-score of the 99th percentile of the standard normal distribution. */
const Z_99 = 2.3263;

/** Draws latencies (ms) from the log-normal distribution the options describe. */
export function latencySampler(
  options: LatencyOptions,
  random: () => number = Math.random,
): () => number {
  const { p50Ms, p99Ms } = options;
  if (!(p50Ms >= 0) || !(p99Ms >= p50Ms)) {
    throw new Error('Latency needs 0 <= p50Ms <= p99Ms');
  }
  const maxMs = options.maxMs ?? 5 * p99Ms;
  const sigma = p50Ms > 0 ? Math.log(p99Ms / p50Ms) / Z_99 : 0;
  return () => {
    if (p50Ms === 0) return 0;
    // Box-Muller: one standard normal from two uniforms (1 - u keeps log away from 0).
    const u = 1 - random();
    const v = random();
    const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    return Math.min(maxMs, p50Ms * Math.exp(sigma * normal));
  };
}

function drawRetryAfter(value: ThrottleOptions['retryAfterSeconds']): number {
  if (typeof value === 'number') return value;
  // Whole tenths of a second, as Graph sends fractional values.
  return Math.round((value.min + Math.random() * (value.max - value.min)) * 10) / 10;
}

export interface GraphStandInOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Initial directory; default {@link defaultSeed}(). */
  users?: SeedUser[];
  /** Enforce application permissions from the token's `roles` claim; default true. */
  enforceRoles?: boolean;
  /** An extra accepted token audience besides https://graph.microsoft.com and Graph's app id. */
  audience?: string;
  /**
   * Microsoft Entra role held by the calling app; default 'User Administrator' (the least role for
   * app-only password resets). Changing accountEnabled / passwordProfile of a user with a
   * `privilegedRole` such as Global Administrator needs 'Privileged Authentication Administrator'
   * or 'Global Administrator'; with 'none', password resets are refused for everyone. Applies even
   * when enforceRoles is false.
   */
  appDirectoryRole?: AppDirectoryRole;
  /** Clock skew tolerated for exp/nbf, like Entra token validation; default 300 s. */
  clockSkewSeconds?: number;
  /** When set, tokens whose `tid` differs are rejected with 401. */
  tenantId?: string;
  /** Delay every request like a remote service; default none. See {@link LatencyOptions}. */
  latency?: LatencyOptions;
  /**
   * Fail fast unless this process trusts the dev CA (NODE_EXTRA_CA_CERTS), since fetch and the
   * Graph client in this process could not connect otherwise. Default true.
   */
  requireTrustedCa?: boolean;
}

export interface GraphStandIn {
  /** https://127.0.0.1:PORT — use as the Graph base URL; paths are /v1.0/... */
  readonly url: string;
  readonly hostname: string;
  readonly port: number;
  /** Every request received, in arrival order (cleared in place by reset()). */
  readonly requests: RecordedRequest[];
  /** Recorded requests other than GET. */
  writes(): RecordedRequest[];
  /**
   * Clears recorded requests, injected faults and the throttle. The directory and the latency are
   * kept.
   */
  reset(): void;
  addUser(user: SeedUser): DirectoryUser;
  /** Snapshot of a user by id or UPN (case-insensitive). */
  getUser(idOrUpn: string): DirectoryUser | undefined;
  users(): DirectoryUser[];
  /** The last password set through passwordProfile, for asserting it never leaks. */
  lastPasswordOf(idOrUpn: string): string | undefined;
  passwordResetCount(idOrUpn: string): number;
  injectFault(fault: Fault): FaultHandle;
  /** Removes injected faults and the throttle. */
  clearFaults(): void;
  /**
   * Graph-like write quota: a token bucket over revoke/PATCH (full at first), answering writes over
   * it with 429 + Retry-After and sending x-ms-throttle-limit-percentage from 80 % use; null
   * removes it. Off by default. With `keepUsed`, a quota already set changes in place: the writes
   * used so far stay used (a quota that drops mid-wave), instead of starting full.
   */
  throttle(options: ThrottleOptions | null, change?: { keepUsed: boolean }): void;
  /** Per-request latency (see {@link LatencyOptions}); null removes it. */
  setLatency(latency: LatencyOptions | null): void;
  /** Adds an entry to the sign-in log (shown after the ingestion delay); returns its id. */
  addSignIn(signIn: SeedSignIn): string;
  /** How long after it is added an entry shows in the sign-in log (Entra's log latency). */
  setSignInIngestionDelayMs(ms: number): void;
  /** false: the tenant has no Entra ID P1/P2, and the sign-in log answers 403 as Graph does. */
  setPremiumLicence(licensed: boolean): void;
  /** Requests answered 429 by the write quota (not by injected faults) so far. */
  throttledCount(): number;
  setEnforceRoles(enforce: boolean): void;
  setAppDirectoryRole(role: AppDirectoryRole): void;
  /**
   * Replication lag: for this long after a revocation, reads still return the previous
   * signInSessionsValidFromDateTime (Graph is eventually consistent across replicas). 0 = off.
   */
  setReadLagMs(ms: number): void;
  stop(): Promise<void>;
}

const CONTENT_TYPE =
  'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8';
const METADATA = 'https://graph.microsoft.com/v1.0/$metadata';
const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** Properties the stand-in can return, in Graph's casing; the first group is the default set. */
const DEFAULT_PROPERTIES = [
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
] as const;
const SELECTABLE = [
  ...DEFAULT_PROPERTIES,
  'accountEnabled',
  'userType',
  'onPremisesSyncEnabled',
  'signInSessionsValidFromDateTime',
  'externalUserState',
  'creationType',
  'createdDateTime',
  'lastPasswordChangeDateTime',
  'passwordPolicies',
  'passwordProfile',
  'department',
  'employeeId',
] as const;
type Selectable = (typeof SELECTABLE)[number];
/** Edm.Boolean properties: a filter compares them with true/false, never with a quoted string. */
const BOOLEAN_PROPERTIES = new Set<Selectable>(['accountEnabled', 'onPremisesSyncEnabled']);
const SELECTABLE_BY_LOWER = new Map<string, Selectable>(
  SELECTABLE.map((p) => [p.toLowerCase(), p]),
);

/** PATCH-able string properties (besides accountEnabled, passwordProfile, businessPhones). */
const STRING_PROPERTIES = [
  'displayName',
  'givenName',
  'surname',
  'jobTitle',
  'department',
  'employeeId',
  'officeLocation',
  'mobilePhone',
  'preferredLanguage',
  'passwordPolicies',
] as const;
type StringProperty = (typeof STRING_PROPERTIES)[number];
const READ_ONLY = new Set(
  [
    'id',
    'onPremisesSyncEnabled',
    'signInSessionsValidFromDateTime',
    'createdDateTime',
    'lastPasswordChangeDateTime',
    'creationType',
    'externalUserState',
  ].map((p) => p.toLowerCase()),
);
/** Writable in Graph but not modelled by the stand-in. */
const NOT_MODELLED = new Set(
  ['userPrincipalName', 'mail', 'userType', 'usageLocation', 'otherMails', 'mailNickname'].map(
    (p) => p.toLowerCase(),
  ),
);
/** Properties mastered on-premises for synchronised users (cloud writes fail with 400). */
const ON_PREM_MASTERED = new Set(
  [
    'accountEnabled',
    'passwordProfile',
    'displayName',
    'givenName',
    'surname',
    'jobTitle',
    'department',
    'employeeId',
    'officeLocation',
    'mobilePhone',
    'businessPhones',
    'preferredLanguage',
  ].map((p) => p.toLowerCase()),
);

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface Route {
  operation: GraphOperation;
  key?: string;
  error?: HttpError;
  /** The sign-in log only: the version asked for (beta lists more, and more of each entry). */
  version?: SignInLogVersion;
}

const badRequest = (message: string) => new HttpError(400, 'BadRequest', message);
const methodNotAllowed = () => new HttpError(405, 'Request_BadRequest', MESSAGES.methodNotAllowed);

/** Routes a request the way Graph's OData parser sees it (segments are percent-decoded first). */
export function routeGraphRequest(method: string, rawPath: string): Route {
  let segments = rawPath.split('/').slice(1);
  if (segments.length > 1 && segments[segments.length - 1] === '') segments = segments.slice(0, -1);
  let decoded: string[];
  try {
    decoded = segments.map((s) => decodeURIComponent(s));
  } catch {
    return { operation: 'unsupported', error: badRequest(MESSAGES.queryParse) };
  }
  const [version, first, ...rest] = decoded;
  // The app reads the sign-in log from beta too (SIGNIN_LOG_GRAPH_VERSION); everything else is v1.0.
  const signInLog =
    (first ?? '').toLowerCase() === 'auditlogs' && (rest[0] ?? '').toLowerCase() === 'signins';
  if (signInLog && (version ?? '').toLowerCase() === 'beta' && rest.length === 1) {
    if (method === 'GET') return { operation: 'listSignIns', version: 'beta' };
    return { operation: 'unsupported', error: methodNotAllowed() };
  }
  if ((version ?? '').toLowerCase() !== 'v1.0') {
    return {
      operation: 'unsupported',
      error: badRequest(`Invalid version: ${version ?? ''} (the Graph stand-in serves v1.0 only).`),
    };
  }
  if (first === undefined || first === '') {
    return { operation: 'unsupported', error: badRequest(MESSAGES.segmentNotFound('')) };
  }

  if (first.toLowerCase() === 'auditlogs') {
    if (rest.length === 1 && (rest[0] ?? '').toLowerCase() === 'signins') {
      if (method === 'GET') return { operation: 'listSignIns', version: 'v1.0' };
      return { operation: 'unsupported', error: methodNotAllowed() };
    }
    return { operation: 'unsupported', error: badRequest(MESSAGES.segmentNotFound(rest[0] ?? '')) };
  }
  let key: string;
  let remaining: string[];
  const keyed = /^users\((.*)\)$/is.exec(first);
  if (keyed) {
    // OData key syntax: users('<key>') with single quotes doubled inside.
    const quoted = /^'((?:[^']|'')*)'$/s.exec(keyed[1] ?? '');
    if (!quoted) return { operation: 'unsupported', error: badRequest(MESSAGES.queryParse) };
    key = (quoted[1] ?? '').replace(/''/g, "'");
    remaining = rest;
  } else if (first.toLowerCase() === 'users') {
    if (rest.length === 0) {
      if (method === 'GET') return { operation: 'listUsers' };
      return { operation: 'unsupported', error: methodNotAllowed() };
    }
    key = rest[0] ?? '';
    remaining = rest.slice(1);
    if (key.toLowerCase() === '$count') {
      // The OData raw count of the collection; nothing may follow it.
      if (remaining.length > 0) {
        return { operation: 'unsupported', error: badRequest(MESSAGES.mustBeLastSegment(key)) };
      }
      if (method === 'GET') return { operation: 'countUsers' };
      return { operation: 'unsupported', error: methodNotAllowed() };
    }
    if (key.startsWith('$')) {
      // /users/$x@contoso.com: `$...` parses as an OData system segment applied to the collection.
      return { operation: 'unsupported', error: badRequest(MESSAGES.collectionSegment('users')) };
    }
  } else {
    return { operation: 'unsupported', error: badRequest(MESSAGES.segmentNotFound(first)) };
  }
  if (key === '') return { operation: 'unsupported', error: badRequest(MESSAGES.queryParse) };

  if (remaining.length === 0) {
    if (method === 'GET') return { operation: 'getUser', key };
    if (method === 'PATCH') return { operation: 'patch', key };
    return { operation: 'unsupported', key, error: methodNotAllowed() };
  }
  const action = (remaining[0] ?? '').toLowerCase();
  if (
    remaining.length === 1 &&
    (action === 'revokesigninsessions' || action === 'microsoft.graph.revokesigninsessions')
  ) {
    if (method === 'POST') return { operation: 'revoke', key };
    return { operation: 'unsupported', key, error: methodNotAllowed() };
  }
  return {
    operation: 'unsupported',
    key,
    error: badRequest(MESSAGES.segmentNotFound(remaining[0] ?? '')),
  };
}

interface ActiveFault {
  fault: Fault;
  remaining: number;
  hits: number;
}

const DEFAULT_FAULT_ERRORS: Record<number, { code: string; message: string }> = {
  429: { code: 'TooManyRequests', message: MESSAGES.throttled },
  500: { code: 'generalException', message: 'An unspecified error has occurred.' },
  502: { code: 'BadGateway', message: 'The server received an invalid response from upstream.' },
  503: {
    code: 'serviceNotAvailable',
    message: 'The service is temporarily unavailable. Please try again later.',
  },
  504: { code: 'GatewayTimeout', message: 'The operation has timed out.' },
};

export async function startGraphStandIn(options: GraphStandInOptions = {}): Promise<GraphStandIn> {
  const certs = loadDevCertificates();
  if (options.requireTrustedCa ?? true) assertDevCaTrusted(certs);

  const directory = new Directory(options.users ?? defaultSeed());
  const requests: RecordedRequest[] = [];
  let faults: ActiveFault[] = [];
  let enforceRoles = options.enforceRoles ?? true;
  let appDirectoryRole: AppDirectoryRole = options.appDirectoryRole ?? 'User Administrator';
  const skew = options.clockSkewSeconds ?? 300;
  const normaliseAudience = (aud: string) => aud.replace(/\/+$/, '').toLowerCase();
  const audiences = new Set(
    [GRAPH_RESOURCE, GRAPH_APP_ID, options.audience]
      .filter((a): a is string => !!a)
      .map(normaliseAudience),
  );
  let bucket: (ThrottleOptions & { tokens: number; last: number }) | undefined;
  let readLagMs = 0;
  let latency = options.latency ? latencySampler(options.latency) : undefined;
  let throttled = 0;
  /** The value each user had before its latest revocation, and when that revocation happened. */
  const lastRevocation = new Map<string, { previous: string; at: number }>();
  const signInLog: StoredSignIn[] = [];
  let signInDelayMs = 0;
  let premiumLicence = true;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  const findFault = (route: Route, user: DirectoryUser | undefined): ActiveFault | undefined => {
    return faults.find(({ fault, remaining }) => {
      if (remaining <= 0) return false;
      const op = fault.operation ?? 'any';
      if (op !== 'any' && op !== route.operation) return false;
      if (fault.userKey !== undefined) {
        const wanted = directory.find(fault.userKey);
        if (wanted) return user?.id === wanted.id;
        return route.key?.toLowerCase() === fault.userKey.toLowerCase();
      }
      return true;
    });
  };

  /** Takes `writes` tokens (0: only refills); returns the usage fraction after, or undefined when short. */
  const takeWriteToken = (writes = 1): number | undefined => {
    if (!bucket) return 0;
    const now = Date.now();
    bucket.tokens = Math.min(
      bucket.writesPerWindow,
      bucket.tokens + ((now - bucket.last) * bucket.writesPerWindow) / bucket.windowMs,
    );
    bucket.last = now;
    if (bucket.tokens < writes) return undefined;
    bucket.tokens -= writes;
    return 1 - bucket.tokens / bucket.writesPerWindow;
  };

  const authenticate = (header: string | undefined): string[] => {
    const unauthorized = (message: string) =>
      new HttpError(401, 'InvalidAuthenticationToken', message, {
        'www-authenticate': `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="${GRAPH_APP_ID}"`,
      });
    const match = /^Bearer\s+(.*)$/i.exec(header ?? '');
    const token = match?.[1]?.trim() ?? '';
    if (!token) throw unauthorized(MESSAGES.tokenEmpty);
    if (!token.includes('.')) throw unauthorized(MESSAGES.tokenMalformed);
    const claims = decodeAccessToken(token);
    if (!claims) throw unauthorized(MESSAGES.tokenUnreadable);
    const now = Date.now() / 1000;
    if (typeof claims.exp !== 'number' || claims.exp + skew < now) {
      throw unauthorized(MESSAGES.tokenExpired);
    }
    if (typeof claims.nbf === 'number' && claims.nbf - skew > now) {
      throw unauthorized(MESSAGES.tokenNotYetValid);
    }
    if (typeof claims.aud !== 'string' || !audiences.has(normaliseAudience(claims.aud))) {
      throw unauthorized(MESSAGES.tokenAudience);
    }
    if (options.tenantId && claims.tid !== options.tenantId) {
      throw unauthorized('Access token validation failure. Invalid issuer or tenant.');
    }
    return Array.isArray(claims.roles)
      ? claims.roles.filter((r): r is string => typeof r === 'string')
      : [];
  };

  const forbidden = () =>
    new HttpError(403, 'Authorization_RequestDenied', MESSAGES.insufficientPrivileges);
  const requirePermission = (allowed: boolean) => {
    if (enforceRoles && !allowed) throw forbidden();
  };
  const notFound = (key: string) =>
    new HttpError(404, 'Request_ResourceNotFound', MESSAGES.notFound(key));
  const lookup = (key: string): DirectoryUser => {
    const user = directory.find(key);
    if (!user) throw notFound(key);
    return user;
  };

  const parseSelect = (query: Record<string, string>): Selectable[] | undefined => {
    const raw = query.$select;
    if (raw === undefined) return undefined;
    const selected: Selectable[] = [];
    for (const name of raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const canonical = SELECTABLE_BY_LOWER.get(name.toLowerCase());
      if (!canonical) throw badRequest(MESSAGES.unknownSelect(name));
      if (!selected.includes(canonical)) selected.push(canonical);
    }
    return selected.length > 0 ? selected : undefined;
  };

  const project = (user: DirectoryUser, select: readonly Selectable[] | undefined) => {
    const copy = snapshot(user);
    const out: Record<string, unknown> = {};
    for (const property of select ?? DEFAULT_PROPERTIES) {
      // The password is write-only: Graph returns passwordProfile as null.
      out[property] = property === 'passwordProfile' ? null : copy[property];
    }
    return out;
  };

  const contextFor = (select: readonly Selectable[] | undefined, entity: boolean) =>
    `${METADATA}#users${select ? `(${select.join(',')})` : ''}${entity ? '/$entity' : ''}`;

  const applyFilter = (users: DirectoryUser[], filter: string | undefined): DirectoryUser[] => {
    if (filter === undefined) return users;
    // One clause, `<property> eq '<text>'` or `<property> eq true|false`: what this app sends.
    const eq = /^\s*(\w+)\s+eq\s+(?:'((?:[^']|'')*)'|(true|false))\s*$/i.exec(filter);
    if (!eq) {
      throw badRequest(
        `Unsupported or invalid query filter clause specified (the stand-in supports "<property> eq '<value>'" and "<property> eq true|false").`,
      );
    }
    const name = eq[1] ?? '';
    const property = SELECTABLE_BY_LOWER.get(name.toLowerCase());
    if (!property || property === 'passwordProfile' || property === 'businessPhones') {
      throw new HttpError(400, 'Request_UnsupportedQuery', MESSAGES.unsupportedFilter(name));
    }
    const isBoolean = BOOLEAN_PROPERTIES.has(property);
    const text = eq[2];
    if (text !== undefined) {
      if (isBoolean)
        throw badRequest(MESSAGES.incompatibleFilterTypes('Edm.Boolean', 'Edm.String'));
      const value = text.replace(/''/g, "'").toLowerCase();
      return users.filter((u) => String(u[property] ?? '').toLowerCase() === value);
    }
    if (!isBoolean) throw badRequest(MESSAGES.incompatibleFilterTypes('Edm.String', 'Edm.Boolean'));
    const wanted = (eq[3] ?? '').toLowerCase() === 'true';
    return users.filter((u) => u[property] === wanted);
  };

  /** Validates a PATCH body; returns the changes to apply. Throws Graph's errors. */
  const validatePatch = (body: unknown) => {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw badRequest(MESSAGES.badJson);
    }
    const changes: {
      accountEnabled?: boolean;
      passwordProfile?: { password?: string; forceChangePasswordNextSignIn?: boolean };
      strings: Partial<Record<StringProperty, string | null>>;
      businessPhones?: string[];
    } = { strings: {} };
    const requestBad = (message: string) => new HttpError(400, 'Request_BadRequest', message);
    for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
      const lower = name.toLowerCase();
      if (lower === '@odata.type') continue;
      if (lower === 'accountenabled') {
        if (typeof value !== 'boolean') throw requestBad(MESSAGES.invalidValue('accountEnabled'));
        changes.accountEnabled = value;
      } else if (lower === 'passwordprofile') {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          throw requestBad(MESSAGES.invalidValue('passwordProfile'));
        }
        const profile: { password?: string; forceChangePasswordNextSignIn?: boolean } = {};
        for (const [field, fieldValue] of Object.entries(value as Record<string, unknown>)) {
          const f = field.toLowerCase();
          if (f === 'password') {
            if (typeof fieldValue !== 'string') throw requestBad(MESSAGES.invalidValue('password'));
            profile.password = fieldValue;
          } else if (f === 'forcechangepasswordnextsignin') {
            if (typeof fieldValue !== 'boolean') {
              throw requestBad(MESSAGES.invalidValue('forceChangePasswordNextSignIn'));
            }
            profile.forceChangePasswordNextSignIn = fieldValue;
          } else if (f === 'forcechangepasswordnextsigninwithmfa' || f === '@odata.type') {
            // accepted, not modelled
          } else {
            throw requestBad(MESSAGES.invalidProperty(field));
          }
        }
        changes.passwordProfile = profile;
      } else if (lower === 'businessphones') {
        if (!Array.isArray(value) || value.length > 1 || value.some((v) => typeof v !== 'string')) {
          throw requestBad(MESSAGES.invalidValue('businessPhones'));
        }
        changes.businessPhones = value as string[];
      } else {
        const property = STRING_PROPERTIES.find((p) => p.toLowerCase() === lower);
        if (property) {
          if (value !== null && typeof value !== 'string') {
            throw requestBad(MESSAGES.invalidValue(property));
          }
          if (property === 'displayName' && !value)
            throw requestBad(MESSAGES.invalidValue(property));
          changes.strings[property] = value;
        } else if (READ_ONLY.has(lower)) {
          throw requestBad(MESSAGES.readOnlyProperty(name));
        } else if (NOT_MODELLED.has(lower)) {
          throw requestBad(`The Graph stand-in does not support updating '${name}'.`);
        } else {
          throw requestBad(MESSAGES.invalidProperty(name));
        }
      }
    }
    return changes;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, rawBody: Buffer) => {
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const rawPath = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    const rawQuery = queryAt === -1 ? '' : rawUrl.slice(queryAt + 1);
    const query: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(rawQuery)) query[k] = v;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    let decodedPath = rawPath;
    try {
      decodedPath = decodeURIComponent(rawPath);
    } catch {
      // keep raw
    }
    const text = rawBody.toString('utf8');
    let body: unknown;
    let bodyIsJson = true;
    if (text.trim() !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
        bodyIsJson = false;
      }
    }
    const requestId = randomUUID();
    const method = (req.method ?? 'GET').toUpperCase();
    const route = routeGraphRequest(method, rawPath);
    const target = route.key !== undefined ? directory.find(route.key) : undefined;
    const record: RecordedRequest = {
      method,
      path: rawPath,
      decodedPath,
      url: rawUrl,
      query,
      headers,
      body,
      status: 0,
      requestId,
      clientRequestId: headers['client-request-id'] ?? requestId,
      at: new Date(),
      operation: route.operation,
      ...(target ? { userId: target.id } : {}),
    };
    requests.push(record);

    const commonHeaders = (): Record<string, string> => ({
      'request-id': requestId,
      'client-request-id': record.clientRequestId,
      'x-ms-ags-diagnostic': JSON.stringify({
        ServerInfo: { DataCenter: 'Local Stand-in', Slice: 'E', Ring: '0', ScaleUnit: '000' },
      }),
      'strict-transport-security': 'max-age=31536000',
      'cache-control': 'no-cache',
    });
    let faultHeaders: Record<string, string> = {};
    const send = (status: number, payload: unknown, extra: Record<string, string> = {}) => {
      record.status = status;
      const out: Record<string, string | number> = {
        ...commonHeaders(),
        ...faultHeaders,
        ...extra,
      };
      if (payload === undefined) {
        res.writeHead(status, out);
        res.end();
        return;
      }
      const json = JSON.stringify(payload);
      out['content-type'] = CONTENT_TYPE;
      out['odata-version'] = '4.0';
      out['content-length'] = Buffer.byteLength(json);
      res.writeHead(status, out);
      res.end(json);
    };
    /** A raw value (OData `$count`, `$value`): the number as text/plain, no OData envelope. */
    const sendText = (status: number, text: string) => {
      record.status = status;
      res.writeHead(status, {
        ...commonHeaders(),
        'content-type': 'text/plain',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    const sendError = (error: HttpError) =>
      send(
        error.status,
        {
          error: {
            code: error.code,
            message: error.message,
            innerError: {
              date: graphDateTime().replace(/Z$/, ''),
              'request-id': requestId,
              'client-request-id': record.clientRequestId,
            },
          },
        },
        error.headers,
      );

    // 0. The network and the service take their time.
    if (latency) {
      await sleep(latency());
      if (res.destroyed) return;
    }

    // 1. Injected faults (they stand for gateway / service trouble, so they come first).
    const active = findFault(route, target);
    if (active) {
      active.remaining -= 1;
      active.hits += 1;
      if (active.remaining <= 0) faults = faults.filter((f) => f !== active);
      const { fault } = active;
      if (fault.kind === 'reset') {
        record.fault = 'reset';
        req.socket.destroy();
        return;
      }
      if (fault.kind === 'delay') {
        record.fault = 'delay';
        await sleep(fault.ms);
        if (res.destroyed) return;
      } else if (fault.kind === 'header') {
        record.fault = 'header';
        faultHeaders = fault.headers;
      } else {
        record.fault = 'status';
        const defaults = DEFAULT_FAULT_ERRORS[fault.status] ?? {
          code: fault.status >= 500 ? 'generalException' : 'BadRequest',
          message: `Injected fault (HTTP ${fault.status}).`,
        };
        const extra: Record<string, string> =
          fault.retryAfterSeconds !== undefined
            ? { 'retry-after': String(fault.retryAfterSeconds) }
            : {};
        return sendError(
          new HttpError(
            fault.status,
            fault.code ?? defaults.code,
            fault.message ?? defaults.message,
            extra,
          ),
        );
      }
    }

    try {
      // 2. Authentication, then 3. routing errors, then the operation.
      const roles = authenticate(headers.authorization);
      if (route.error) throw route.error;
      if (!bodyIsJson && (route.operation === 'patch' || route.operation === 'revoke')) {
        throw badRequest(MESSAGES.badJson);
      }
      const key = route.key ?? '';
      const write = (): Record<string, string> => {
        const usage = takeWriteToken();
        if (usage === undefined) {
          record.fault = 'throttle';
          throttled += 1;
          throw new HttpError(429, 'TooManyRequests', MESSAGES.throttled, {
            'retry-after': String(bucket ? drawRetryAfter(bucket.retryAfterSeconds) : 1),
          });
        }
        // Rounded, so that the trickle refilled between two calls does not hide the 80% mark.
        const used = Math.round(usage * 100) / 100;
        return used >= 0.8 ? { 'x-ms-throttle-limit-percentage': used.toFixed(1) } : {};
      };

      switch (route.operation) {
        case 'getUser': {
          requirePermission(canReadUser(roles));
          const select = parseSelect(query);
          const user = lookup(key);
          const revocation = lastRevocation.get(user.id);
          const lagging = revocation !== undefined && Date.now() - revocation.at < readLagMs;
          const seen = lagging
            ? { ...user, signInSessionsValidFromDateTime: revocation.previous }
            : user;
          return send(200, {
            '@odata.context': contextFor(select, true),
            ...project(seen, select),
          });
        }
        case 'listUsers': {
          requirePermission(canReadUser(roles));
          const select = parseSelect(query);
          const users = applyFilter(directory.all(), query.$filter);
          return send(200, {
            '@odata.context': contextFor(select, false),
            value: users.map((u) => project(u, select)),
          });
        }
        case 'countUsers': {
          // Same permission as listing users; an advanced query, so it needs the header.
          requirePermission(canReadUser(roles));
          if ((headers.consistencylevel ?? '').trim().toLowerCase() !== 'eventual') {
            throw new HttpError(400, 'Request_UnsupportedQuery', MESSAGES.countNeedsEventual);
          }
          const users = applyFilter(directory.all(), query.$filter);
          return sendText(200, String(users.length));
        }
        case 'listSignIns': {
          requirePermission(canReadSignIns(roles));
          if (!premiumLicence)
            throw new HttpError(403, NO_PREMIUM_LICENCE.code, NO_PREMIUM_LICENCE.message);
          let page: ReturnType<typeof signInPage>;
          try {
            page = signInPage(
              signInLog,
              query,
              `https://${headers.host ?? '127.0.0.1'}`,
              Date.now(),
              route.version ?? 'v1.0',
            );
          } catch (error) {
            throw new HttpError(
              400,
              'Request_UnsupportedQuery',
              error instanceof Error ? error.message : String(error),
            );
          }
          return send(200, {
            '@odata.context': `https://graph.microsoft.com/${route.version ?? 'v1.0'}/$metadata#auditLogs/signIns`,
            value: page.value,
            ...(page.nextLink === undefined ? {} : { '@odata.nextLink': page.nextLink }),
          });
        }
        case 'revoke': {
          requirePermission(canRevokeSessions(roles));
          const extra = write();
          const user = lookup(key);
          // Guests: no effect at their home tenant, but Graph still answers 200 and stamps the time.
          lastRevocation.set(user.id, {
            previous: user.signInSessionsValidFromDateTime,
            at: Date.now(),
          });
          user.signInSessionsValidFromDateTime = graphDateTime();
          return send(200, { '@odata.context': `${METADATA}#Edm.Boolean`, value: true }, extra);
        }
        case 'patch': {
          const changes = validatePatch(body ?? {});
          const touchesOther =
            Object.keys(changes.strings).length > 0 || changes.businessPhones !== undefined;
          const nothing =
            changes.accountEnabled === undefined && !changes.passwordProfile && !touchesOther;
          if (changes.accountEnabled !== undefined)
            requirePermission(canWriteAccountEnabled(roles));
          if (changes.passwordProfile) requirePermission(canWritePasswordProfile(roles));
          if (touchesOther) requirePermission(canWriteOther(roles));
          if (nothing) {
            requirePermission(
              canWriteOther(roles) ||
                canWriteAccountEnabled(roles) ||
                canWritePasswordProfile(roles),
            );
          }
          const extra = write();
          const user = lookup(key);
          const sensitive = changes.accountEnabled !== undefined || !!changes.passwordProfile;
          if (sensitive && !mayChangeSensitiveAttributes(appDirectoryRole, user.privilegedRole)) {
            throw forbidden();
          }
          if (changes.passwordProfile && !mayResetPasswords(appDirectoryRole)) throw forbidden();
          if (user.onPremisesSyncEnabled === true) {
            const mastered = [
              ...(changes.accountEnabled !== undefined ? ['accountEnabled'] : []),
              ...(changes.passwordProfile ? ['passwordProfile'] : []),
              ...Object.keys(changes.strings),
              ...(changes.businessPhones ? ['businessPhones'] : []),
            ].some((p) => ON_PREM_MASTERED.has(p.toLowerCase()));
            if (mastered) throw new HttpError(400, 'Request_BadRequest', MESSAGES.onPremMastered);
          }
          const password = changes.passwordProfile?.password;
          if (password !== undefined && !passwordMeetsComplexity(password)) {
            throw new HttpError(400, 'Request_BadRequest', MESSAGES.passwordComplexity);
          }
          // Validated: apply everything at once.
          if (changes.accountEnabled !== undefined) user.accountEnabled = changes.accountEnabled;
          if (changes.passwordProfile) {
            if (password !== undefined) {
              directory.setPassword(user.id, password);
              user.lastPasswordChangeDateTime = graphDateTime();
            }
            if (changes.passwordProfile.forceChangePasswordNextSignIn !== undefined) {
              user.forceChangePasswordNextSignIn =
                changes.passwordProfile.forceChangePasswordNextSignIn;
            }
          }
          for (const [property, value] of Object.entries(changes.strings)) {
            (user as unknown as Record<string, string | null>)[property] = value;
          }
          if (changes.businessPhones) user.businessPhones = [...changes.businessPhones];
          return send(204, undefined, extra);
        }
        default:
          throw badRequest(MESSAGES.queryParse);
      }
    } catch (error) {
      if (error instanceof HttpError) return sendError(error);
      throw error;
    }
  };

  const server: Server = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) {
        res.writeHead(413, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: { code: 'RequestEntityTooLarge', message: 'Request too large.' },
          }),
        );
        return;
      }
      handle(req, res, Buffer.concat(chunks)).catch((error: unknown) => {
        if (res.headersSent) return;
        const message = error instanceof Error ? error.message : String(error);
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'generalException', message } }));
      });
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => {
    // A client that does not trust the dev CA hangs up during the handshake; nothing to do here.
  });
  const port = await listenOnLoopback(server, options.port ?? 0);

  return {
    url: `https://127.0.0.1:${port}`,
    hostname: '127.0.0.1',
    port,
    requests,
    writes: () => requests.filter((r) => r.method !== 'GET'),
    reset() {
      requests.splice(0, requests.length);
      faults = [];
      bucket = undefined;
      throttled = 0;
    },
    addUser: (user) => snapshot(directory.add(user)),
    getUser(idOrUpn) {
      const user = directory.find(idOrUpn);
      return user ? snapshot(user) : undefined;
    },
    users: () => directory.all().map(snapshot),
    lastPasswordOf: (idOrUpn) => directory.lastPasswordOf(idOrUpn),
    passwordResetCount: (idOrUpn) => directory.passwordResetCount(idOrUpn),
    injectFault(fault) {
      const times = fault.times ?? 1;
      if (!(times > 0)) throw new Error('Fault times must be a positive number (or Infinity)');
      const active: ActiveFault = { fault, remaining: times, hits: 0 };
      faults.push(active);
      return {
        get hits() {
          return active.hits;
        },
        get remaining() {
          return Math.max(0, active.remaining);
        },
        remove() {
          active.remaining = 0;
          faults = faults.filter((f) => f !== active);
        },
      };
    },
    clearFaults() {
      faults = [];
      bucket = undefined;
    },
    throttle(throttleOptions, change) {
      if (change?.keepUsed && bucket && throttleOptions) takeWriteToken(0);
      const used = change?.keepUsed && bucket ? bucket.writesPerWindow - bucket.tokens : 0;
      bucket = throttleOptions
        ? {
            ...throttleOptions,
            tokens: Math.max(0, throttleOptions.writesPerWindow - used),
            last: Date.now(),
          }
        : undefined;
    },
    setLatency(options) {
      latency = options ? latencySampler(options) : undefined;
    },
    addSignIn(signIn) {
      const stored = toStoredSignIn(signIn, Date.now(), signInDelayMs);
      signInLog.push(stored);
      return stored.entry.id as string;
    },
    setSignInIngestionDelayMs(ms) {
      signInDelayMs = ms;
    },
    setPremiumLicence(licensed) {
      premiumLicence = licensed;
    },
    throttledCount: () => throttled,
    setEnforceRoles(enforce) {
      enforceRoles = enforce;
    },
    setAppDirectoryRole(role) {
      appDirectoryRole = role;
    },
    setReadLagMs(ms) {
      readLagMs = ms;
    },
    async stop() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
