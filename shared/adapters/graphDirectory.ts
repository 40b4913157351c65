import {
  AuthenticationHandler,
  Client,
  GraphError,
  GraphRequest,
  HTTPMessageHandler,
  ResponseType,
  RetryHandler,
  RetryHandlerOptions,
} from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials';
import type { TokenCredential } from '@azure/identity';
import type { GraphConfig, SignInLogVersion } from '../app/config';
import { ErrorCodes, OffboardingError, type ErrorCode } from '../core/errors';
import type { Secret } from '../core/password';
import type { Directory, DirectoryCall, DirectoryUser, SignInLog, SignInPage } from '../core/ports';
import type { SignInEntry } from '../core/signInWatch';
import { userPath, type UserRef } from '../core/userRef';
import { GraphPermissions, PASSWORD_RESET_ROLE, type GraphOperation } from './graphPermissions';

const USER_SELECT = [
  'id',
  'userPrincipalName',
  'userType',
  'onPremisesSyncEnabled',
  'signInSessionsValidFromDateTime',
  'accountEnabled',
].join(',');

/** Upper bound for one Graph call including its in-invocation retries. */
const CALL_BUDGET_MS = 45_000;

/** Names @azure/identity gives the errors it throws when no token can be had. */
const CREDENTIAL_ERROR_NAMES = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AggregateAuthenticationError',
  'AuthenticationRequiredError',
]);

interface GraphErrorBody {
  error?: { code?: string; message?: string };
}

export interface GraphDirectoryOptions {
  config: GraphConfig;
  credential: TokenCredential;
  /**
   * Called with the share of the write quota Graph says is used (x-ms-throttle-limit-percentage,
   * sent from 80 %), so the app-wide budget slows down before Graph throttles.
   */
  onThrottleLimit?: (usedFraction: number) => void;
}

/**
 * The Directory port on Microsoft Graph v1.0 (and the sign-in log, read from the version
 * SIGNIN_LOG_GRAPH_VERSION names). Every failure leaves here as an OffboardingError with an
 * actionable message; a password never appears in one.
 */
/** Page size asked of the sign-in log (Graph's maximum and default: 1,000). */
export const SIGN_IN_PAGE_SIZE = 1000;

/**
 * The beta sign-in log lists interactive sign-ins unless the filter asks for others; both user
 * kinds in one query is supported, user and service principal kinds together are not
 * (learn.microsoft.com/graph/api/resources/signin?view=graph-rest-beta, signInEventTypes: its
 * description says so, as does the note at the top of that page on non-interactive sign-ins).
 */
const BOTH_USER_SIGN_IN_KINDS =
  "signInEventTypes/any(t: t eq 'interactiveUser' or t eq 'nonInteractiveUser')";

/** Graph's error code for a tenant without Entra ID P1/P2 reading the sign-in log (403). */
export const NO_PREMIUM_LICENCE_CODE = 'Authentication_RequestFromNonPremiumTenantOrB2CTenant';

export class GraphDirectory implements Directory, SignInLog {
  private readonly client: Client;
  private readonly onThrottleLimit: ((usedFraction: number) => void) | undefined;

  private readonly endpoint: string;
  private readonly signInLogVersion: SignInLogVersion;

  constructor(options: GraphDirectoryOptions) {
    const { config, credential } = options;
    this.endpoint = config.endpoint;
    this.signInLogVersion = config.signInLogVersion;
    this.onThrottleLimit = options.onThrottleLimit;
    const authProvider = new TokenCredentialAuthenticationProvider(credential, {
      scopes: [config.scope],
    });
    const retry = new RetryHandler(
      new RetryHandlerOptions(
        1,
        config.maxRetries,
        (_delay, _attempt, _request, _options, response) =>
          // Long Retry-After: give the message back for a later retry instead of holding its lock.
          retryAfterSeconds(response) <= config.maxRetryWaitSeconds,
      ),
    );
    const auth = new AuthenticationHandler(authProvider);
    auth.setNext(retry);
    retry.setNext(new HTTPMessageHandler());
    this.client = Client.initWithMiddleware({
      middleware: auth,
      baseUrl: config.endpoint,
      defaultVersion: 'v1.0',
      // The Graph client only sends tokens to hosts it knows; sovereign clouds and local stand-ins
      // are named explicitly.
      customHosts: new Set([new URL(config.endpoint).hostname]),
    });
  }

  async getUser(ref: UserRef): Promise<DirectoryCall & { user: DirectoryUser }> {
    const response = await this.send('readUser', userPath(ref), 'GET');
    const body = (await response.json()) as Partial<DirectoryUser>;
    if (typeof body.id !== 'string' || typeof body.userPrincipalName !== 'string') {
      throw new OffboardingError(
        ErrorCodes.GraphUnavailable,
        'Graph returned a user without id or userPrincipalName.',
        {
          retryable: true,
          ...requestIdOf(response),
        },
      );
    }
    return {
      ...requestIdOf(response),
      user: {
        id: body.id,
        userPrincipalName: body.userPrincipalName,
        userType: body.userType ?? null,
        onPremisesSyncEnabled: body.onPremisesSyncEnabled ?? null,
        signInSessionsValidFromDateTime: body.signInSessionsValidFromDateTime ?? null,
        accountEnabled: typeof body.accountEnabled === 'boolean' ? body.accountEnabled : null,
      },
    };
  }

  async revokeSignInSessions(userId: string): Promise<DirectoryCall> {
    // Docs say 204, Graph answers 200 {"value": true}; any 2xx is success.
    const response = await this.send(
      'revokeSignInSessions',
      `/users/${userId}/revokeSignInSessions`,
      'POST',
      {},
    );
    return requestIdOf(response);
  }

  async disableAccount(userId: string): Promise<DirectoryCall> {
    const response = await this.send('disableAccount', `/users/${userId}`, 'PATCH', {
      accountEnabled: false,
    });
    return requestIdOf(response);
  }

  async enableAccount(userId: string): Promise<DirectoryCall> {
    const response = await this.send('enableAccount', `/users/${userId}`, 'PATCH', {
      accountEnabled: true,
    });
    return requestIdOf(response);
  }

  async resetPassword(userId: string, password: Secret): Promise<DirectoryCall> {
    const response = await this.send('resetPassword', `/users/${userId}`, 'PATCH', {
      passwordProfile: { password: password.reveal(), forceChangePasswordNextSignIn: true },
    });
    return requestIdOf(response);
  }

  async countEnabledUsers(): Promise<number> {
    // $count on users is an advanced query: Graph needs ConsistencyLevel: eventual (and answers
    // from an index that lags by seconds to minutes, which is fine for a share of the tenant).
    let response: Response;
    try {
      response = await this.send('readUser', '/users/$count', 'GET', undefined, (request) =>
        request.header('ConsistencyLevel', 'eventual').filter('accountEnabled eq true'),
      );
    } catch (error) {
      // Said in the guardrail's terms: the messages of a user read would name a user.
      const cause = error instanceof OffboardingError ? error : translateThrown(error);
      throw new OffboardingError(
        cause.code,
        `Counting the tenant's enabled users (users/$count, for GUARDRAIL_*_MAX_PERCENT) failed: ${cause.message}`,
        {
          retryable: cause.retryable,
          cause: error,
          ...(cause.retryAfterSeconds === undefined
            ? {}
            : { retryAfterSeconds: cause.retryAfterSeconds }),
          ...(cause.requestId === undefined ? {} : { requestId: cause.requestId }),
        },
      );
    }
    const text = (await response.text()).trim();
    if (!/^\d+$/.test(text)) {
      throw new OffboardingError(
        ErrorCodes.GraphUnavailable,
        'Graph answered the count of enabled users with something that is not a number.',
        { retryable: true, ...requestIdOf(response) },
      );
    }
    return Number(text);
  }

  async listSignIns(userId: string, from: string, to: string): Promise<SignInPage> {
    // `List signIns`: $filter on userId and createdDateTime, newest first, paged by nextLink. Only
    // beta lists non-interactive sign-ins (a refresh token redeemed), when the filter asks for them.
    const clauses = [
      `userId eq '${userId.replace(/'/g, "''")}'`,
      `createdDateTime ge ${odataTime(from)}`,
      `createdDateTime le ${odataTime(to)}`,
      ...(this.signInLogVersion === 'beta' ? [BOTH_USER_SIGN_IN_KINDS] : []),
    ];
    const response = await this.send('readSignIns', '/auditLogs/signIns', 'GET', undefined, (r) =>
      r.version(this.signInLogVersion).filter(clauses.join(' and ')).top(SIGN_IN_PAGE_SIZE),
    );
    return signInPageOf(await response.json());
  }

  async nextSignIns(nextLink: string): Promise<SignInPage> {
    // The link is Graph's own (absolute, with its skip token): followed only to this Graph's log.
    const link = new URL(nextLink);
    if (
      link.origin !== new URL(this.endpoint).origin ||
      link.pathname.toLowerCase() !== `/${this.signInLogVersion}/auditlogs/signins`
    )
      throw new OffboardingError(
        ErrorCodes.GraphUnavailable,
        'Graph sent a sign-in log @odata.nextLink to another host or path; it was not followed.',
        { retryable: false },
      );
    const response = await this.send('readSignIns', nextLink, 'GET', undefined, (r) => r);
    return signInPageOf(await response.json());
  }

  private async send(
    operation: GraphOperation,
    path: string,
    method: 'GET' | 'POST' | 'PATCH',
    body?: object,
    shape?: (request: GraphRequest) => GraphRequest,
  ): Promise<Response> {
    let request = this.client
      .api(path)
      .responseType(ResponseType.RAW)
      .option('signal', AbortSignal.timeout(CALL_BUDGET_MS));
    if (shape !== undefined) request = shape(request);
    else if (operation === 'readUser') request = request.select(USER_SELECT);
    let response: Response;
    try {
      response = (await (method === 'GET'
        ? request.get()
        : method === 'POST'
          ? request.post(body)
          : request.patch(body))) as Response;
    } catch (error) {
      throw translateThrown(error);
    }
    // Despite its name the header is a fraction of the limit, 0.8 to 1.8 (Graph throttling docs).
    // The sign-in log is another service with limits of its own ("identity and access reports",
    // learn.microsoft.com/graph/throttling-limits): its usage says nothing of the write quota.
    const used = Number(response.headers.get('x-ms-throttle-limit-percentage') ?? NaN);
    if (operation !== 'readSignIns' && Number.isFinite(used) && used > 0)
      this.onThrottleLimit?.(used);
    if (response.ok) return response;
    throw await translateResponse(operation, response);
  }
}

/** An OData DateTimeOffset literal (unquoted, UTC). */
function odataTime(iso: string): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) throw new Error(`not a time: ${iso}`);
  return at.toISOString();
}

function signInPageOf(body: unknown): SignInPage {
  const page = (body ?? {}) as { value?: unknown; '@odata.nextLink'?: unknown };
  if (!Array.isArray(page.value))
    throw new OffboardingError(
      ErrorCodes.GraphUnavailable,
      'Graph answered the sign-in log without a value array.',
      { retryable: true },
    );
  const next = page['@odata.nextLink'];
  const signIns = page.value.flatMap((entry) => signInOf(entry) ?? []);
  const unreadable = page.value.length - signIns.length;
  return {
    signIns,
    ...(unreadable > 0 ? { unreadable } : {}),
    ...(typeof next === 'string' && next !== '' ? { nextLink: next } : {}),
  };
}

/**
 * One `signIn` (v1.0 or beta), the fields the watch reads; undefined when it has no id, time or
 * numeric status (the caller counts it unreadable). MFA
 * and CAE are stated only by beta; an authenticationRequirement of another value is not stated.
 */
function signInOf(raw: unknown): SignInEntry | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const e = raw as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const id = text(e.id);
  const createdDateTime = text(e.createdDateTime);
  if (id === undefined || createdDateTime === undefined) return undefined;
  if (Number.isNaN(Date.parse(createdDateTime))) return undefined;
  // Without a numeric status.errorCode the entry proves neither a success nor a failure.
  const status = (e.status ?? {}) as { errorCode?: unknown };
  if (typeof status.errorCode !== 'number') return undefined;
  const errorCode = status.errorCode;
  const details = Array.isArray(e.authenticationProcessingDetails)
    ? (e.authenticationProcessingDetails as { key?: unknown; value?: unknown }[])
    : [];
  const cae = details.find((d) => typeof d.key === 'string' && /^is cae token$/i.test(d.key));
  const entry: SignInEntry = { id, createdDateTime, errorCode };
  const app = text(e.appDisplayName);
  if (app !== undefined) entry.appDisplayName = app;
  const ip = text(e.ipAddress);
  if (ip !== undefined) entry.ipAddress = ip;
  const client = text(e.clientAppUsed);
  if (client !== undefined) entry.clientAppUsed = client;
  if (typeof e.isInteractive === 'boolean') entry.isInteractive = e.isInteractive;
  const ca = text(e.conditionalAccessStatus);
  if (ca !== undefined) entry.conditionalAccessStatus = ca;
  // Microsoft's own samples spell it both multiFactorAuthentication and MultifactorAuthentication.
  const requirement = text(e.authenticationRequirement)?.toLowerCase();
  if (requirement === 'multifactorauthentication')
    entry.authenticationRequirement = 'multiFactorAuthentication';
  else if (requirement === 'singlefactorauthentication')
    entry.authenticationRequirement = 'singleFactorAuthentication';
  if (cae !== undefined && typeof cae.value === 'string')
    entry.caeToken = cae.value.toLowerCase() === 'true';
  return entry;
}

function retryAfterSeconds(response: Response | undefined): number {
  const header = response?.headers.get('Retry-After');
  if (header === null || header === undefined) return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(header);
  return Number.isNaN(date) ? 0 : Math.max(0, (date - Date.now()) / 1000);
}

function requestIdOf(response: Response): DirectoryCall {
  const requestId = response.headers.get('request-id');
  return requestId ? { requestId } : {};
}

/** Errors thrown before any HTTP status: no token, network failure, timeout. */
function translateThrown(error: unknown): OffboardingError {
  // Already ours: the bounded credential's timeout. The Graph client re-wraps what its auth
  // provider throws in a GraphError that keeps only the name and message.
  if (error instanceof OffboardingError) return error;
  if (error instanceof GraphError && error.code === 'OffboardingError') {
    return new OffboardingError(ErrorCodes.AuthenticationFailed, error.message, {
      retryable: true,
      cause: error,
    });
  }
  const name =
    error instanceof GraphError ? (error.code ?? '') : error instanceof Error ? error.name : '';
  const message = error instanceof Error ? error.message : String(error);
  if (CREDENTIAL_ERROR_NAMES.has(name)) {
    return new OffboardingError(
      ErrorCodes.AuthenticationFailed,
      `Could not get a Microsoft Graph token from the managed identity (${name}): ${message}. Check that the Function App has its identity and that AZURE_CLIENT_ID names it.`,
      { retryable: true, cause: error },
    );
  }
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new OffboardingError(
      ErrorCodes.GraphUnavailable,
      `Microsoft Graph did not answer within ${CALL_BUDGET_MS / 1000} s.`,
      {
        retryable: true,
        cause: error,
      },
    );
  }
  return new OffboardingError(
    ErrorCodes.GraphUnavailable,
    `Microsoft Graph could not be reached: ${message}`,
    {
      retryable: true,
      cause: error,
    },
  );
}

async function translateResponse(
  operation: GraphOperation,
  response: Response,
): Promise<OffboardingError> {
  let graphCode = '';
  let graphMessage = '';
  try {
    const body = (await response.json()) as GraphErrorBody;
    graphCode = body.error?.code ?? '';
    graphMessage = (body.error?.message ?? '').replace(/\.+$/, '');
  } catch {
    // Not JSON (a gateway's HTML page): the status says enough.
  }
  const status = response.status;
  const detail = `Graph ${status}${graphCode ? ` ${graphCode}` : ''}${graphMessage ? `: ${graphMessage}` : ''}`;
  const common = {
    ...requestIdOf(response),
  };
  const make = (
    code: ErrorCode,
    message: string,
    retryable: boolean,
    extra: { retryAfterSeconds?: number } = {},
  ) => new OffboardingError(code, message, { retryable, ...common, ...extra });

  if (status === 429 || status === 503 || status === 504 || status >= 500) {
    const wait = retryAfterSeconds(response);
    return make(
      status === 429 ? ErrorCodes.Throttled : ErrorCodes.GraphUnavailable,
      `${detail}${wait ? ` (Retry-After ${wait} s)` : ''}`,
      true,
      wait ? { retryAfterSeconds: wait } : {},
    );
  }
  if (status === 401) {
    return make(
      ErrorCodes.AuthenticationFailed,
      `${detail}. The token was not accepted; check GRAPH_ENDPOINT matches the cloud the identity lives in.`,
      true,
    );
  }
  if (status === 403 && graphCode === NO_PREMIUM_LICENCE_CODE) {
    return make(
      ErrorCodes.NoPremiumLicence,
      `${detail}. Reading the sign-in log needs Microsoft Entra ID P1 or P2 in the tenant: the sign-in watch is unavailable without it (turn SIGNIN_WATCH_ENABLED off, or license the tenant).`,
      false,
    );
  }
  if (status === 403) {
    return make(ErrorCodes.Forbidden, forbiddenMessage(operation, detail), false);
  }
  if (status === 404) {
    return make(
      ErrorCodes.UserNotFound,
      `${detail}. No such user in this tenant: check the object id or UPN (a guest UPN contains #EXT#).`,
      false,
    );
  }
  if (status === 400 && /on-premises mastered|Directory Sync/i.test(graphMessage)) {
    return make(
      ErrorCodes.OnPremisesMastered,
      `${detail}. The user is synchronised from on-premises Active Directory: make this change there.`,
      false,
    );
  }
  return make(ErrorCodes.GraphBadRequest, detail, false);
}

function forbiddenMessage(operation: GraphOperation, detail: string): string {
  const permission = GraphPermissions[operation];
  if (operation === 'resetPassword') {
    return `${detail}. Resetting a password needs the application permission ${permission} and the Entra role ${PASSWORD_RESET_ROLE} on the managed identity; a user who holds an admin role can only be reset by a higher role (Privileged Authentication Administrator), so reset this one by hand.`;
  }
  return `${detail}. Grant the managed identity the Microsoft Graph application permission ${permission} (admin consent required).`;
}
