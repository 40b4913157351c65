import { ErrorCodes, OffboardingError } from '../core/errors';
import type { RetryPolicy } from '../core/retryPolicy';
import type { PolicyConfig } from '../core/ports';
import type { PacingSettings } from '../pacing';
import { parseUserRef } from '../core/userRef';
import type { SignInWatchSettings } from '../core/signInWatch';

/**
 * Every setting the app reads. This list is the contract with infra/ (tests check that Bicep sets
 * each `requiredInAzure` setting) and with the settings table in docs/settings.md.
 */
export interface SettingSpec {
  name: string;
  description: string;
  default?: string;
  /** Must be set as an app setting in Azure (infra sets it). */
  requiredInAzure: boolean;
  /** For local development only: must never be set in Azure (a connection string, say). */
  localOnly?: boolean;
}

export const SETTINGS = [
  {
    name: 'EMPLOYEE_LEAVING_QUEUE',
    description: 'Queue with "employee leaving" events (also read by the trigger binding).',
    default: 'employee-leaving',
    requiredInAzure: true,
  },
  {
    name: 'MFA_ENABLED_QUEUE',
    description: 'Queue with "MFA enabled" events (also read by the trigger binding).',
    default: 'mfa-enabled',
    requiredInAzure: true,
  },
  {
    name: 'ServiceBusConnection__fullyQualifiedNamespace',
    description:
      'Service Bus namespace host (identity-based connection used by the triggers and for scheduling).',
    requiredInAzure: true,
  },
  {
    name: 'ServiceBusConnection__credential',
    description: '`managedidentity` for the triggers to use the managed identity.',
    requiredInAzure: true,
  },
  {
    name: 'ServiceBusConnection__clientId',
    description: 'Client id of the user-assigned identity the triggers use.',
    requiredInAzure: true,
  },
  {
    name: 'ServiceBusConnection',
    description:
      'Local development only: a Service Bus connection string (for example the local stand-in). Never set in Azure.',
    requiredInAzure: false,
    localOnly: true,
  },
  {
    name: 'AZURE_CLIENT_ID',
    description:
      'Client id of the user-assigned managed identity used for Graph and the audit table. Unset: system-assigned identity.',
    requiredInAzure: true,
  },
  {
    name: 'GRAPH_ENDPOINT',
    description:
      'Microsoft Graph root for the cloud in use (for example https://graph.microsoft.us). The token scope follows it.',
    default: 'https://graph.microsoft.com',
    requiredInAzure: true,
  },
  {
    name: 'GRAPH_CREDENTIAL',
    description:
      '`managedidentity` (default) or `developer` (Azure CLI / azd sign-in, for local use against a real tenant only).',
    default: 'managedidentity',
    requiredInAzure: false,
  },
  {
    name: 'GRAPH_MAX_RETRIES',
    description: 'Retries of one Graph call inside one invocation (429/503/504), 0-5.',
    default: '2',
    requiredInAzure: false,
  },
  {
    name: 'GRAPH_MAX_RETRY_WAIT_SECONDS',
    description:
      'Longest Retry-After honoured inside one invocation; longer waits end the attempt as retryable so the message is retried later instead of holding a lock.',
    default: '10',
    requiredInAzure: false,
  },
  {
    name: 'AUDIT_TABLE_ENDPOINT',
    description:
      'Table service endpoint of the audit store (https://<account>.table.core.windows.net), used with the managed identity.',
    requiredInAzure: true,
  },
  {
    name: 'AUDIT_TABLE_CONNECTION_STRING',
    description:
      'Local development only: audit store connection string (for example Azurite). Takes precedence over the endpoint.',
    requiredInAzure: false,
    localOnly: true,
  },
  {
    name: 'AUDIT_TABLE_NAME',
    description: 'Audit table name.',
    default: 'OffboardingAudit',
    requiredInAzure: true,
  },
  {
    name: 'PROTECTED_USERS',
    description:
      'Required. Object ids and/or UPNs (comma-, semicolon- or space-separated) that are never written to: the break-glass accounts. Each entry must be a GUID or a UPN Entra accepts, or the app does not start. `none` (alone) protects nobody, on purpose.',
    requiredInAzure: true,
  },
  {
    name: 'DRY_RUN',
    description:
      '`true`: read and evaluate, write nothing to Graph, audit what would have been done.',
    default: 'false',
    requiredInAzure: true,
  },
  {
    name: 'RETRY_MAX_ATTEMPTS',
    description:
      'Processing attempts per MFA event for transient failures (Graph 5xx, token endpoint, audit store) before it is dead-lettered, 1-50. Waits Graph asked for (429, Retry-After) and waits for the write budget use no attempt. Departures have no attempt limit (DEPARTURE_GIVE_UP_AFTER_MINUTES).',
    default: '8',
    requiredInAzure: false,
  },
  {
    name: 'DEPARTURE_GIVE_UP_AFTER_MINUTES',
    description:
      'A departure (or cancellation, reinstatement) that keeps failing transiently is given up and dead-lettered only this long after it was due (its leave date, else when it arrived), 60-10080. Every event, MFA included, is given up after this long.',
    default: '1440',
    requiredInAzure: false,
  },
  {
    name: 'DEPARTURE_OVERDUE_MINUTES',
    description:
      'A departure still not done this long after it was due is audited and published as `delayed` and the delayed alert fires; it keeps being retried, 1-1440.',
    default: '15',
    requiredInAzure: false,
  },
  {
    name: 'RETRY_BASE_DELAY_SECONDS',
    description:
      'Delay before the first delayed retry; doubles each attempt (with jitter), never below Retry-After.',
    default: '30',
    requiredInAzure: false,
  },
  {
    name: 'RETRY_MAX_DELAY_SECONDS',
    description: 'Longest delay between two attempts.',
    default: '3600',
    requiredInAzure: false,
  },
  {
    name: 'PACING_WRITES_PER_SECOND',
    description:
      "The whole app's Microsoft Graph write budget, shared by every instance through the audit storage account (Graph allows 20/s per app and tenant). `0` turns pacing off.",
    default: '20',
    requiredInAzure: false,
  },
  {
    name: 'PACING_BURST_WRITES',
    description:
      "Size of the shared budget in writes, the departure reserve included; kept far below Graph's own burst (3,000).",
    default: '440',
    requiredInAzure: false,
  },
  {
    name: 'PACING_DEPARTURE_RESERVE_WRITES',
    description:
      'Part of the budget only departures may use, so an employee.leaving never waits behind an MFA wave.',
    default: '400',
    requiredInAzure: false,
  },
  {
    name: 'PACING_MAX_WAIT_SECONDS',
    description:
      'Longest an event waits in-process for budget; beyond it the event is parked (a copy for later, no attempt used).',
    default: '30',
    requiredInAzure: false,
  },
  {
    name: 'GUARDRAIL_DEPARTURES_PER_WINDOW',
    description:
      'Blast-radius guardrail: departures (employee.leaving) executed per window, across all instances, before further ones are held for an operator (`offboard guardrail`), 1-100000.',
    default: '50',
    requiredInAzure: false,
  },
  {
    name: 'GUARDRAIL_DEPARTURES_WINDOW_MINUTES',
    description: 'The sliding window the departures guardrail counts over, in minutes (1-10080).',
    default: '60',
    requiredInAzure: false,
  },
  {
    name: 'GUARDRAIL_DEPARTURES_MAX_PERCENT',
    description:
      "Optional second departures limit: at most this percent of the tenant's enabled users per window (the lower of the two applies; 0-100, decimals allowed, 0: off). Read from Graph (users/$count) at most hourly.",
    default: '0',
    requiredInAzure: false,
  },
  {
    name: 'GUARDRAIL_MFA_PER_WINDOW',
    description:
      'Blast-radius guardrail for mfa.enabled events not sent as an approved wave (`offboard enqueue`), 1-1000000.',
    default: '2000',
    requiredInAzure: false,
  },
  {
    name: 'GUARDRAIL_MFA_WINDOW_MINUTES',
    description: 'The sliding window the MFA guardrail counts over, in minutes (1-10080).',
    default: '60',
    requiredInAzure: false,
  },
  {
    name: 'GUARDRAIL_MFA_MAX_PERCENT',
    description:
      "Optional second MFA limit: at most this percent of the tenant's enabled users per window (0-100, decimals allowed, 0: off).",
    default: '0',
    requiredInAzure: false,
  },
  {
    name: 'GUARDRAIL_REINSTATEMENTS_PER_WINDOW',
    description:
      'Blast-radius guardrail for reinstatements (employee.reinstated, offboard reinstate), counted apart from departures: executed per window before further ones are held, 1-100000.',
    default: '20',
    requiredInAzure: false,
  },
  {
    name: 'GUARDRAIL_REINSTATEMENTS_WINDOW_MINUTES',
    description:
      'The sliding window the reinstatements guardrail counts over, in minutes (1-10080).',
    default: '60',
    requiredInAzure: false,
  },
  {
    name: 'ENQUEUE_CONFIRM_DEPARTURES_ABOVE',
    description:
      '`offboard enqueue`: a departures wave of more events than this needs `--confirm-size N` with its exact size (0: the departures guardrail limit, GUARDRAIL_DEPARTURES_PER_WINDOW).',
    default: '0',
    requiredInAzure: false,
  },
  {
    name: 'GUARDRAIL_TABLE_NAME',
    description:
      "The guardrail's table in the audit storage account: counts, trips, wave approvals and operators' decisions about held events. Operators may write it; the audit table they only read.",
    default: 'OffboardingGuardrail',
    requiredInAzure: true,
  },
  {
    name: 'OUTCOME_TOPIC',
    description:
      'Service Bus topic every final outcome is published to as a CloudEvents 1.0 event (for HR, ITSM and SIEM subscribers).',
    default: 'offboarding-outcomes',
    requiredInAzure: true,
  },
  {
    name: 'AUDIT_BLOB_ENDPOINT',
    description:
      "Blob service endpoint of the immutable audit log (https://<account>.blob.core.windows.net): every final record is appended there, in a container with a time-based immutability policy. Unset: the audit table's account (AUDIT_TABLE_ENDPOINT with `.blob.` for `.table.`).",
    requiredInAzure: true,
  },
  {
    name: 'AUDIT_LOG_CONTAINER',
    description: 'Container of the immutable audit log (append blobs).',
    default: 'audit-log',
    requiredInAzure: true,
  },
  {
    name: 'SIGNIN_WATCH_ENABLED',
    description:
      "`true`: after each departure that succeeded, read the person's sign-ins from the Entra sign-in log at SIGNIN_WATCH_AFTER_MINUTES after the access cut-off; a successful sign-in after the cut-off is audited, published (`signin-after-cutoff`) and alerted. Needs Entra ID P1 or P2 and the Graph permission AuditLog.Read.All (granted only when this is on).",
    default: 'false',
    requiredInAzure: false,
  },
  {
    name: 'SIGNIN_WATCH_AFTER_MINUTES',
    description:
      'When the sign-in watch checks, in minutes after the access cut-off: 1 to 5 increasing whole numbers, comma-separated, each 10-10080 (sign-in logs arrive minutes late).',
    default: '60,1440',
    requiredInAzure: false,
  },
  {
    name: 'SIGNIN_LOG_GRAPH_VERSION',
    description:
      'Which Graph version the sign-in watch and `offboard report --wave` read the sign-in log from: `beta` (default) also lists non-interactive sign-ins (a refresh token used after the revocation) and states MFA (`authenticationRequirement`) and CAE (`Is CAE Token`); `v1.0` is the version Microsoft supports for production but lists interactive sign-ins only and states neither, so the watch cannot see a refresh-token sign-in and the wave report counts everyone as `MFA not stated`.',
    default: 'beta',
    requiredInAzure: false,
  },
  {
    name: 'OFFBOARD_OPERATOR',
    description:
      'The `offboard` command only: who runs an ops command, recorded on what it sends (replays, waves). Unset: the signed-in OS user name.',
    requiredInAzure: false,
  },
] as const satisfies readonly SettingSpec[];

export type SettingName = (typeof SETTINGS)[number]['name'];

export type GraphCredentialKind = 'managedidentity' | 'developer';

export interface GraphConfig {
  /** Root without trailing slash, e.g. https://graph.microsoft.com */
  endpoint: string;
  /** `${endpoint}/.default` */
  scope: string;
  credential: GraphCredentialKind;
  managedIdentityClientId?: string;
  maxRetries: number;
  maxRetryWaitSeconds: number;
  /** The version the sign-in log is read from (SIGNIN_LOG_GRAPH_VERSION); writes are always v1.0. */
  signInLogVersion: SignInLogVersion;
}

/** Graph versions the sign-in log can be read from: beta states MFA, CAE and non-interactive. */
export const SignInLogVersions = ['beta', 'v1.0'] as const;
export type SignInLogVersion = (typeof SignInLogVersions)[number];

export interface AuditConfig {
  tableName: string;
  endpoint?: string;
  connectionString?: string;
}

export interface ImmutableLogConfig {
  container: string;
  endpoint?: string;
  /** Local development: the audit store's connection string (Azurite serves blobs too). */
  connectionString?: string;
}

/** Blast-radius limits per route: at most `maxPerWindow` executions in any `windowMinutes`. */
export interface GuardrailSettings {
  employeeLeaving: { maxPerWindow: number; windowMinutes: number };
  mfaEnabled: { maxPerWindow: number; windowMinutes: number };
  employeeReinstated: { maxPerWindow: number; windowMinutes: number };
}

/** Optional share-of-tenant limits, percent per route (0: off). */
export type GuardrailShares = { employeeLeaving: number; mfaEnabled: number };

export interface AppConfig {
  queues: { employeeLeaving: string; mfaEnabled: string };
  graph: GraphConfig;
  audit: AuditConfig;
  policy: PolicyConfig;
  serviceBus: { fullyQualifiedNamespace?: string; connectionString?: string };
  retry: RetryPolicy;
  pacing: PacingSettings;
  guardrail: {
    limits: GuardrailSettings;
    /**
     * `offboard enqueue`: a departures wave larger than this needs `--confirm-size N` (0: the
     * departures guardrail limit).
     */
    confirmDeparturesAbove: number;
    percentOfEnabledUsers: GuardrailShares;
    tableName: string;
  };
  outcomes: { topic: string };
  signInWatch: SignInWatchSettings;
  immutableLog: ImmutableLogConfig;
}

type Env = Readonly<Record<string, string | undefined>>;

function invalid(setting: string, rule: string): OffboardingError {
  return new OffboardingError(ErrorCodes.InvalidConfiguration, `Setting ${setting} ${rule}`, {
    retryable: false,
  });
}

function read(env: Env, name: SettingName): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function withDefault(env: Env, name: SettingName): string {
  const spec = SETTINGS.find((s) => s.name === name);
  const fallback = spec && 'default' in spec ? spec.default : undefined;
  const value = read(env, name) ?? fallback;
  if (value === undefined) throw invalid(name, 'is required.');
  return value;
}

function readBoolean(env: Env, name: SettingName): boolean {
  const value = withDefault(env, name).toLowerCase();
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalid(name, `must be "true" or "false" (got "${value}").`);
}

function readSignInLogVersion(env: Env): SignInLogVersion {
  const value = withDefault(env, 'SIGNIN_LOG_GRAPH_VERSION');
  const known = SignInLogVersions.find((v) => v === value.toLowerCase());
  if (known === undefined)
    throw invalid(
      'SIGNIN_LOG_GRAPH_VERSION',
      `must be one of ${SignInLogVersions.join(', ')} (got "${value}").`,
    );
  return known;
}

function readInteger(env: Env, name: SettingName, min: number, max: number): number {
  const raw = withDefault(env, name);
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw invalid(name, `must be a whole number from ${min} to ${max} (got "${raw}").`);
  }
  return value;
}

/** SIGNIN_WATCH_AFTER_MINUTES, checked even while the watch is off (fails closed either way). */
function readWatchMinutes(env: Env): number[] {
  const raw = withDefault(env, 'SIGNIN_WATCH_AFTER_MINUTES');
  const parts = raw.split(',').map((p) => p.trim());
  const values = parts.map(Number);
  const ok =
    parts.length >= 1 &&
    parts.length <= 5 &&
    parts.every((p) => /^\d+$/.test(p)) &&
    values.every((v, i) => v >= 10 && v <= 10_080 && (i === 0 || v > (values[i - 1] ?? 0)));
  if (!ok)
    throw invalid(
      'SIGNIN_WATCH_AFTER_MINUTES',
      `must be 1 to 5 increasing whole numbers of minutes, comma-separated, each 10-10080, e.g. "60,1440" (got "${raw}").`,
    );
  return values;
}

function readPercent(env: Env, name: SettingName): number {
  const raw = withDefault(env, name);
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || value > 100) {
    throw invalid(name, `must be a percentage from 0 to 100, e.g. 0.5 (got "${raw}").`);
  }
  return value;
}

function readGraphEndpoint(env: Env): string {
  const raw = withDefault(env, 'GRAPH_ENDPOINT');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid('GRAPH_ENDPOINT', `must be an absolute https URL (got "${raw}").`);
  }
  if (url.protocol !== 'https:' || url.search !== '' || url.hash !== '') {
    throw invalid(
      'GRAPH_ENDPOINT',
      `must be an https URL without query or fragment (got "${raw}").`,
    );
  }
  return url.origin + url.pathname.replace(/\/+$/, '');
}

/**
 * PROTECTED_USERS, failing closed: the setting is required, every entry must be an object id or a
 * UPN that Entra accepts (the same rule events follow), and `none` alone is the explicit way to
 * protect nobody. A typo (a trailing dot, quotes, a look-alike or invisible character, `%40`)
 * would otherwise protect nobody without a word.
 */
export function parseProtectedUsers(raw: string | undefined): ReadonlySet<string> {
  if (raw === undefined) {
    throw invalid(
      'PROTECTED_USERS',
      'is required: list the break-glass accounts (object ids or UPNs), or set it to "none" to protect nobody on purpose.',
    );
  }
  const entries = raw.split(/[,;\s]+/).filter((entry) => entry !== '');
  if (entries.length === 1 && entries[0]?.toLowerCase() === 'none') return new Set();
  if (entries.length === 0) {
    throw invalid('PROTECTED_USERS', 'is empty: list the accounts, or set it to "none".');
  }
  const users = new Set<string>();
  for (const entry of entries) {
    if (entry.toLowerCase() === 'none') {
      throw invalid('PROTECTED_USERS', '"none" cannot be combined with accounts.');
    }
    const parsed = parseUserRef(entry);
    if (!parsed.ok) {
      // Non-ASCII shown as \uXXXX: the usual culprit is a character that looks right or is invisible.
      const shown = entry.replace(
        /[^\x21-\x7e]/g,
        (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
      );
      throw invalid('PROTECTED_USERS', `entry "${shown}" ${parsed.rule}.`);
    }
    users.add(parsed.ref.value.toLowerCase());
  }
  return users;
}

/** Reads and validates every setting once; throws an InvalidConfiguration error naming the setting. */
function readPacing(env: Env): PacingSettings {
  const burstWrites = readInteger(env, 'PACING_BURST_WRITES', 1, 3000);
  const departureReserveWrites = readInteger(env, 'PACING_DEPARTURE_RESERVE_WRITES', 0, 3000);
  if (departureReserveWrites >= burstWrites) {
    throw invalid(
      'PACING_DEPARTURE_RESERVE_WRITES',
      `must be less than PACING_BURST_WRITES (${burstWrites}), or MFA waves could never run.`,
    );
  }
  return {
    writesPerSecond: readInteger(env, 'PACING_WRITES_PER_SECOND', 0, 1000),
    burstWrites,
    departureReserveWrites,
    maxWaitSeconds: readInteger(env, 'PACING_MAX_WAIT_SECONDS', 0, 120),
  };
}

/**
 * The Service Bus settings, for whatever sends or receives (the functions, and every command that
 * runs an event, replays or sends): checked before it acts, so a missing setting never shows only
 * after Graph was written to.
 */
export function requireServiceBus(config: Pick<AppConfig, 'serviceBus'>): void {
  const { connectionString, fullyQualifiedNamespace } = config.serviceBus;
  if (connectionString === undefined && fullyQualifiedNamespace === undefined) {
    throw new OffboardingError(ErrorCodes.InvalidConfiguration, SERVICE_BUS_SETTING_REQUIRED, {
      retryable: false,
    });
  }
}

/** Who runs an ops command: OFFBOARD_OPERATOR, or else the OS user name given. */
export function operatorName(osUser: () => string, env: Env = process.env): string {
  return read(env, 'OFFBOARD_OPERATOR') ?? osUser();
}

export function loadConfig(env: Env = process.env): AppConfig {
  const credential = withDefault(env, 'GRAPH_CREDENTIAL');
  if (credential !== 'managedidentity' && credential !== 'developer') {
    throw invalid(
      'GRAPH_CREDENTIAL',
      `must be "managedidentity" or "developer" (got "${credential}").`,
    );
  }
  const endpoint = readGraphEndpoint(env);
  const clientId = read(env, 'AZURE_CLIENT_ID');

  const auditConnectionString = read(env, 'AUDIT_TABLE_CONNECTION_STRING');
  const auditEndpoint = read(env, 'AUDIT_TABLE_ENDPOINT')?.replace(/\/+$/, '');
  if (auditConnectionString === undefined && auditEndpoint === undefined) {
    throw invalid(
      'AUDIT_TABLE_ENDPOINT',
      'is required (or AUDIT_TABLE_CONNECTION_STRING for local development).',
    );
  }
  const tableName = withDefault(env, 'AUDIT_TABLE_NAME');
  if (!/^[A-Za-z][A-Za-z0-9]{2,62}$/.test(tableName)) {
    throw invalid(
      'AUDIT_TABLE_NAME',
      `must be 3-63 letters or digits, starting with a letter (got "${tableName}").`,
    );
  }

  const guardrailTableName = withDefault(env, 'GUARDRAIL_TABLE_NAME');
  if (!/^[A-Za-z][A-Za-z0-9]{2,62}$/.test(guardrailTableName) || guardrailTableName === tableName) {
    throw invalid(
      'GUARDRAIL_TABLE_NAME',
      `must be 3-63 letters or digits, starting with a letter, and not the audit table (got "${guardrailTableName}").`,
    );
  }

  // The immutable log lives in the audit storage account: its blob endpoint follows the table's
  // unless set (infra sets it); anything else is a configuration error, never a log left out.
  const blobEndpoint =
    read(env, 'AUDIT_BLOB_ENDPOINT')?.replace(/\/+$/, '') ??
    auditEndpoint?.replace(/^(https:\/\/[a-z0-9]+)\.table\./, '$1.blob.');
  if (
    auditConnectionString === undefined &&
    (blobEndpoint === undefined || !/^https:\/\/[^/]+\.blob\./.test(blobEndpoint))
  ) {
    throw invalid(
      'AUDIT_BLOB_ENDPOINT',
      'is required (https://<account>.blob.core.windows.net): every final record is also appended to the immutable audit log.',
    );
  }
  const container = withDefault(env, 'AUDIT_LOG_CONTAINER');
  if (!/^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(container)) {
    throw invalid(
      'AUDIT_LOG_CONTAINER',
      `must be a blob container name: 3-63 lower-case letters, digits and single hyphens (got "${container}").`,
    );
  }

  return {
    queues: {
      employeeLeaving: withDefault(env, 'EMPLOYEE_LEAVING_QUEUE'),
      mfaEnabled: withDefault(env, 'MFA_ENABLED_QUEUE'),
    },
    graph: {
      endpoint,
      scope: `${endpoint}/.default`,
      credential,
      ...(clientId === undefined ? {} : { managedIdentityClientId: clientId }),
      maxRetries: readInteger(env, 'GRAPH_MAX_RETRIES', 0, 5),
      maxRetryWaitSeconds: readInteger(env, 'GRAPH_MAX_RETRY_WAIT_SECONDS', 0, 120),
      signInLogVersion: readSignInLogVersion(env),
    },
    audit: {
      tableName,
      ...(auditEndpoint === undefined ? {} : { endpoint: auditEndpoint }),
      ...(auditConnectionString === undefined ? {} : { connectionString: auditConnectionString }),
    },
    policy: {
      protectedUsers: parseProtectedUsers(read(env, 'PROTECTED_USERS')),
      dryRun: readBoolean(env, 'DRY_RUN'),
    },
    retry: {
      maxAttempts: readInteger(env, 'RETRY_MAX_ATTEMPTS', 1, 50),
      baseDelaySeconds: readInteger(env, 'RETRY_BASE_DELAY_SECONDS', 0, 86_400),
      maxDelaySeconds: readInteger(env, 'RETRY_MAX_DELAY_SECONDS', 0, 86_400),
      giveUpAfterMinutes: readInteger(env, 'DEPARTURE_GIVE_UP_AFTER_MINUTES', 60, 10_080),
      overdueAfterMinutes: readInteger(env, 'DEPARTURE_OVERDUE_MINUTES', 1, 1_440),
    },
    pacing: readPacing(env),
    guardrail: {
      limits: {
        employeeLeaving: {
          maxPerWindow: readInteger(env, 'GUARDRAIL_DEPARTURES_PER_WINDOW', 1, 100_000),
          windowMinutes: readInteger(env, 'GUARDRAIL_DEPARTURES_WINDOW_MINUTES', 1, 10_080),
        },
        mfaEnabled: {
          maxPerWindow: readInteger(env, 'GUARDRAIL_MFA_PER_WINDOW', 1, 1_000_000),
          windowMinutes: readInteger(env, 'GUARDRAIL_MFA_WINDOW_MINUTES', 1, 10_080),
        },
        employeeReinstated: {
          maxPerWindow: readInteger(env, 'GUARDRAIL_REINSTATEMENTS_PER_WINDOW', 1, 100_000),
          windowMinutes: readInteger(env, 'GUARDRAIL_REINSTATEMENTS_WINDOW_MINUTES', 1, 10_080),
        },
      },
      confirmDeparturesAbove: readInteger(env, 'ENQUEUE_CONFIRM_DEPARTURES_ABOVE', 0, 1_000_000),
      percentOfEnabledUsers: {
        employeeLeaving: readPercent(env, 'GUARDRAIL_DEPARTURES_MAX_PERCENT'),
        mfaEnabled: readPercent(env, 'GUARDRAIL_MFA_MAX_PERCENT'),
      },
      tableName: guardrailTableName,
    },
    outcomes: { topic: withDefault(env, 'OUTCOME_TOPIC') },
    signInWatch: {
      enabled: readBoolean(env, 'SIGNIN_WATCH_ENABLED'),
      afterMinutes: readWatchMinutes(env),
    },
    immutableLog: {
      container,
      ...(blobEndpoint === undefined ? {} : { endpoint: blobEndpoint }),
      ...(auditConnectionString === undefined ? {} : { connectionString: auditConnectionString }),
    },
    serviceBus: serviceBusTarget(env),
  };
}

/**
 * The Service Bus settings alone, so that commands which send or read queues (`dlq`, `enqueue`)
 * can name them first, before any other missing setting.
 */
export function serviceBusTarget(env: Env = process.env): AppConfig['serviceBus'] {
  const fullyQualifiedNamespace = read(env, 'ServiceBusConnection__fullyQualifiedNamespace');
  const connectionString = read(env, 'ServiceBusConnection');
  return {
    ...(fullyQualifiedNamespace === undefined ? {} : { fullyQualifiedNamespace }),
    ...(connectionString === undefined ? {} : { connectionString }),
  };
}

export const SERVICE_BUS_SETTING_REQUIRED =
  'Setting ServiceBusConnection__fullyQualifiedNamespace is required (or ServiceBusConnection for local development).';
