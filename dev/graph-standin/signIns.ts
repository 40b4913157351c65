import { randomUUID } from 'node:crypto';

/**
 * The stand-in's Entra sign-in log: GET /{v1.0|beta}/auditLogs/signIns as Microsoft Graph documents
 * it (learn.microsoft.com/graph/api/signin-list, resources/signin, in both versions):
 *   - application permission AuditLog.Read.All; the tenant needs Microsoft Entra ID P1 or P2,
 *     otherwise 403 `Authentication_RequestFromNonPremiumTenantOrB2CTenant` ("Neither tenant is
 *     B2C or tenant doesn't have premium license", docs: "Common errors" of the reporting API);
 *   - newest first; page size `$top`, at most and by default 1,000; further pages through an
 *     absolute `@odata.nextLink` carrying a `$skiptoken`;
 *   - `$filter` clauses joined with `and`: `userId eq '...'`, `createdDateTime ge|le|gt|lt
 *     <DateTimeOffset>`, `status/errorCode eq|ne <n>`, `appDisplayName eq '...'`, the ones the
 *     docs list for this API and this app sends; beta also `signInEventTypes/any(t: t eq '...'
 *     [or t eq '...'])` over the user kinds (user and service principal kinds together are not
 *     supported);
 *   - interactive sign-ins only, unless (beta) the filter asks for non-interactive ones;
 *   - `authenticationRequirement`, `authenticationProcessingDetails` ("Is CAE Token") and
 *     `signInEventTypes` are beta properties: a v1.0 entry has none of them;
 *   - entries appear with a delay (Microsoft documents sign-in log latency of about 2 minutes at
 *     the 95th and 5 at the 99th percentile, more at times): `ingestionDelayMs` holds an entry back
 *     that long after it was added.
 * Throttling is the fault injection of the stand-in (operation `listSignIns`, 429 + Retry-After).
 */

export type SignInLogVersion = 'v1.0' | 'beta';

/** Properties of the beta `signIn` that the v1.0 resource does not have. */
const BETA_ONLY = [
  'authenticationRequirement',
  'authenticationProcessingDetails',
  'signInEventTypes',
];

const USER_KINDS = ['interactiveUser', 'nonInteractiveUser'] as const;

/** A sign-in as a test seeds it; the rest of the Graph shape is filled in. */
export interface SeedSignIn {
  userId: string;
  userPrincipalName?: string;
  /** Default: now. */
  createdDateTime?: string;
  /** status.errorCode: 0 (default) succeeded; e.g. 50126 wrong password, 50057 account disabled. */
  errorCode?: number;
  failureReason?: string;
  appDisplayName?: string;
  ipAddress?: string;
  clientAppUsed?: string;
  /** false: a non-interactive sign-in (a client redeeming a refresh token); beta lists it on request. */
  isInteractive?: boolean;
  conditionalAccessStatus?: 'success' | 'failure' | 'notApplied';
  authenticationRequirement?: 'singleFactorAuthentication' | 'multiFactorAuthentication';
  /** Adds authenticationProcessingDetails `Is CAE Token` (the portal's filter of that name). */
  caeToken?: boolean;
  /** Serves the entry without `status` (a changed shape): a client must not read it as anything. */
  withoutStatus?: boolean;
}

export interface StoredSignIn {
  entry: Record<string, unknown>;
  createdAt: number;
  /** When the log shows it (added + ingestion delay). */
  visibleAt: number;
  userId: string;
  errorCode: number;
  appDisplayName: string;
  interactive: boolean;
}

export const SIGN_IN_MAX_PAGE = 1000;
export const NO_PREMIUM_LICENCE = {
  code: 'Authentication_RequestFromNonPremiumTenantOrB2CTenant',
  message: "Neither tenant is B2C or tenant doesn't have premium license",
};

export function toStoredSignIn(seed: SeedSignIn, now: number, delayMs: number): StoredSignIn {
  const created = seed.createdDateTime ?? new Date(now).toISOString();
  const errorCode = seed.errorCode ?? 0;
  const appDisplayName = seed.appDisplayName ?? 'Office 365 Exchange Online';
  const entry: Record<string, unknown> = {
    id: randomUUID(),
    createdDateTime: created,
    userDisplayName: seed.userPrincipalName ?? null,
    userPrincipalName: seed.userPrincipalName ?? null,
    userId: seed.userId,
    appId: '00000002-0000-0ff1-ce00-000000000000',
    appDisplayName,
    ipAddress: seed.ipAddress ?? '203.0.113.10',
    clientAppUsed: seed.clientAppUsed ?? 'Browser',
    correlationId: randomUUID(),
    conditionalAccessStatus: seed.conditionalAccessStatus ?? 'notApplied',
    isInteractive: seed.isInteractive ?? true,
    signInEventTypes: [(seed.isInteractive ?? true) ? 'interactiveUser' : 'nonInteractiveUser'],
    riskDetail: 'none',
    riskLevelAggregated: 'none',
    riskLevelDuringSignIn: 'none',
    riskState: 'none',
    riskEventTypes_v2: [],
    resourceDisplayName: appDisplayName,
    resourceId: '00000002-0000-0ff1-ce00-000000000000',
    status: {
      errorCode,
      failureReason: seed.failureReason ?? (errorCode === 0 ? null : 'Other.'),
      additionalDetails: null,
    },
    deviceDetail: {
      deviceId: '',
      displayName: null,
      operatingSystem: 'Windows 10',
      browser: 'Edge',
    },
    location: { city: 'Amsterdam', state: 'Noord-Holland', countryOrRegion: 'NL' },
    appliedConditionalAccessPolicies: [],
    ...(seed.authenticationRequirement === undefined
      ? {}
      : { authenticationRequirement: seed.authenticationRequirement }),
    ...(seed.caeToken === undefined
      ? {}
      : {
          authenticationProcessingDetails: [
            { key: 'Is CAE Token', value: seed.caeToken ? 'True' : 'False' },
          ],
        }),
  };
  if (seed.withoutStatus === true) delete entry.status;
  return {
    entry,
    createdAt: Date.parse(created),
    visibleAt: now + delayMs,
    userId: seed.userId.toLowerCase(),
    errorCode,
    appDisplayName,
    interactive: seed.isInteractive ?? true,
  };
}

type Predicate = (s: StoredSignIn) => boolean;

/**
 * Parses the $filter this API supports in `version`; throws a message for Graph's 400 otherwise.
 * Without a signInEventTypes clause only interactive sign-ins match.
 */
export function parseSignInFilter(
  filter: string | undefined,
  version: SignInLogVersion = 'v1.0',
): Predicate {
  const clauses = filter === undefined || filter.trim() === '' ? [] : filter.split(/\s+and\s+/i);
  let kinds: ReadonlySet<string> = new Set(['interactiveUser']);
  const predicates: Predicate[] = clauses.map((clause) => {
    const lambda = /^\s*\(?\s*signInEventTypes\/any\(\s*(\w+)\s*:\s*(.*?)\)\s*\)?\s*$/i.exec(
      clause,
    );
    if (lambda && version === 'beta') {
      const variable = lambda[1] ?? '';
      const asked = (lambda[2] ?? '').split(/\s+or\s+/i).map((term) => {
        const eq = new RegExp(`^\\s*${variable}\\s+eq\\s+'(\\w+)'\\s*$`, 'i').exec(term);
        const kind = USER_KINDS.find((k) => k.toLowerCase() === (eq?.[1] ?? '').toLowerCase());
        if (kind === undefined)
          throw new Error(
            `Unsupported or invalid query filter clause specified: '${clause.trim()}'.`,
          );
        return kind;
      });
      kinds = new Set(asked);
      return () => true;
    }
    const text = /^\s*(userId|appDisplayName)\s+eq\s+'((?:[^']|'')*)'\s*$/i.exec(clause);
    if (text) {
      const value = (text[2] ?? '').replace(/''/g, "'").toLowerCase();
      return (text[1] ?? '').toLowerCase() === 'userid'
        ? (s) => s.userId === value
        : (s) => s.appDisplayName.toLowerCase() === value;
    }
    const time = /^\s*createdDateTime\s+(ge|le|gt|lt)\s+(\S+)\s*$/i.exec(clause);
    if (time) {
      const at = Date.parse(time[2] ?? '');
      if (Number.isNaN(at) || (time[2] ?? '').startsWith("'"))
        throw new Error(`Invalid DateTimeOffset literal '${time[2] ?? ''}' in the filter.`);
      switch ((time[1] ?? '').toLowerCase()) {
        case 'ge':
          return (s) => s.createdAt >= at;
        case 'le':
          return (s) => s.createdAt <= at;
        case 'gt':
          return (s) => s.createdAt > at;
        default:
          return (s) => s.createdAt < at;
      }
    }
    const status = /^\s*status\/errorCode\s+(eq|ne)\s+(\d+)\s*$/i.exec(clause);
    if (status) {
      const code = Number(status[2]);
      return (status[1] ?? '').toLowerCase() === 'eq'
        ? (s) => s.errorCode === code
        : (s) => s.errorCode !== code;
    }
    throw new Error(`Unsupported or invalid query filter clause specified: '${clause.trim()}'.`);
  });
  const kindOf = (s: StoredSignIn) => (s.interactive ? 'interactiveUser' : 'nonInteractiveUser');
  return (s) => kinds.has(kindOf(s)) && predicates.every((p) => p(s));
}

/** An entry as `version` shows it: v1.0 has none of the beta-only properties. */
function asVersion(entry: Record<string, unknown>, version: SignInLogVersion) {
  if (version === 'beta') return entry;
  return Object.fromEntries(Object.entries(entry).filter(([key]) => !BETA_ONLY.includes(key)));
}

/** One page of the log as Graph answers it, newest first; nextLink when more remain. */
export function signInPage(
  log: readonly StoredSignIn[],
  query: Record<string, string>,
  baseUrl: string,
  now: number,
  version: SignInLogVersion = 'v1.0',
): { value: Record<string, unknown>[]; nextLink?: string } {
  const predicate = parseSignInFilter(query.$filter, version);
  const top = query.$top === undefined ? SIGN_IN_MAX_PAGE : Number(query.$top);
  if (!Number.isInteger(top) || top < 1 || top > SIGN_IN_MAX_PAGE)
    throw new Error(`Invalid page size $top=${query.$top ?? ''}: 1 to ${SIGN_IN_MAX_PAGE}.`);
  const skip = query.$skiptoken === undefined ? 0 : decodeSkipToken(query.$skiptoken);
  const matching = log
    .filter((s) => s.visibleAt <= now && predicate(s))
    .sort((a, b) => b.createdAt - a.createdAt);
  const page = matching.slice(skip, skip + top).map((s) => asVersion(s.entry, version));
  if (skip + top >= matching.length) return { value: page };
  // As Graph writes it: the system query options with a literal `$`, their values encoded.
  const next = [
    ...(query.$filter === undefined ? [] : [`$filter=${encodeURIComponent(query.$filter)}`]),
    `$top=${top}`,
    `$skiptoken=${Buffer.from(`offset:${skip + top}`).toString('base64url')}`,
  ].join('&');
  return {
    value: page,
    nextLink: `${baseUrl}/${version}/auditLogs/signIns?${next}`,
  };
}

function decodeSkipToken(token: string): number {
  const match = /^offset:(\d+)$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
  if (!match) throw new Error('Invalid $skiptoken.');
  return Number(match[1]);
}
