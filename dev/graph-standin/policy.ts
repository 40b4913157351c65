/**
 * The authorization and validation rules the stand-in applies, taken from the Microsoft Graph v1.0
 * documentation (user: get / update / revokeSignInSessions permission tables, "Who can perform
 * sensitive actions" in resources/users, Entra password policy) and from error bodies quoted in
 * Graph issue threads. See the report in the PR for sources.
 */

/** Application permissions (app roles) that satisfy each operation, least privileged first. */
export const PERMISSIONS = {
  /** GET /users/{id | userPrincipalName} */
  readUser: [
    'User.Read.All',
    'User.ReadWrite.All',
    'Directory.Read.All',
    'Directory.ReadWrite.All',
  ],
  /** POST /users/{id}/revokeSignInSessions */
  revokeSessions: ['User.RevokeSessions.All', 'User.ReadWrite.All', 'Directory.ReadWrite.All'],
  /**
   * PATCH accountEnabled. The granular User.EnableDisableAccount.All works only together with a
   * read permission (docs: "User.EnableDisableAccount.All + User.Read.All is the least privileged
   * combination"); see {@link canWriteAccountEnabled}.
   */
  enableDisable: ['User.EnableDisableAccount.All', 'User.ReadWrite.All', 'Directory.ReadWrite.All'],
  /** PATCH passwordProfile */
  passwordProfile: [
    'User-PasswordProfile.ReadWrite.All',
    'User.ReadWrite.All',
    'Directory.ReadWrite.All',
  ],
  /** GET /auditLogs/signIns (application permission; the tenant also needs Entra ID P1 or P2) */
  readSignIns: ['AuditLog.Read.All'],
  /** PATCH of other (non-sensitive) properties */
  writeUser: ['User.ReadWrite.All', 'Directory.ReadWrite.All'],
} as const;

const hasAny = (roles: readonly string[], wanted: readonly string[]) =>
  wanted.some((w) => roles.some((r) => r.toLowerCase() === w.toLowerCase()));

export const canReadUser = (roles: readonly string[]) => hasAny(roles, PERMISSIONS.readUser);
export const canRevokeSessions = (roles: readonly string[]) =>
  hasAny(roles, PERMISSIONS.revokeSessions);
export const canWriteAccountEnabled = (roles: readonly string[]) =>
  hasAny(roles, PERMISSIONS.writeUser) ||
  (hasAny(roles, ['User.EnableDisableAccount.All']) && canReadUser(roles));
export const canWritePasswordProfile = (roles: readonly string[]) =>
  hasAny(roles, PERMISSIONS.passwordProfile);
export const canReadSignIns = (roles: readonly string[]) => hasAny(roles, PERMISSIONS.readSignIns);
export const canWriteOther = (roles: readonly string[]) => hasAny(roles, PERMISSIONS.writeUser);

/**
 * Microsoft Entra role held by the calling app (the managed identity's service principal). Besides
 * the Graph permission, an app-only password reset needs at least User Administrator, and changing
 * sensitive attributes (accountEnabled, passwordProfile) of an administrator needs a role at least
 * as privileged as the target's: Privileged Authentication Administrator or Global Administrator
 * for a Global Administrator.
 */
export type AppDirectoryRole =
  | 'none'
  | 'Helpdesk Administrator'
  | 'User Administrator'
  | 'Privileged Authentication Administrator'
  | 'Global Administrator';

/**
 * Target roles whose sensitive attributes each app role may change ("Who can update sensitive
 * attributes?" / "Who can reset passwords?" tables). A target with no role is always allowed
 * (given the Graph permission). Unknown target roles need Privileged Authentication Administrator.
 */
const LIMITED_ROLES = [
  'Directory Readers',
  'Guest Inviter',
  'Message Center Reader',
  'Password Administrator',
  'Reports Reader',
  'Usage Summary Reports Reader',
];
const MANAGEABLE: Record<AppDirectoryRole, 'all' | string[]> = {
  none: [],
  'Helpdesk Administrator': [...LIMITED_ROLES, 'Helpdesk Administrator'],
  'User Administrator': [
    ...LIMITED_ROLES,
    'Helpdesk Administrator',
    'Groups Administrator',
    'User Administrator',
  ],
  'Privileged Authentication Administrator': 'all',
  'Global Administrator': 'all',
};

export function mayChangeSensitiveAttributes(
  app: AppDirectoryRole,
  targetRole: string | null,
): boolean {
  if (!targetRole) return true;
  const manageable = MANAGEABLE[app];
  return (
    manageable === 'all' || manageable.some((r) => r.toLowerCase() === targetRole.toLowerCase())
  );
}

/** App-only password reset needs an Entra role on top of the Graph permission. */
export const mayResetPasswords = (app: AppDirectoryRole): boolean => app !== 'none';

/**
 * Entra ID cloud password rules (default, strong passwords): 8–256 characters, at least three of
 * lowercase, uppercase, digit, symbol, and no characters outside printable ASCII and space.
 */
export function passwordMeetsComplexity(password: string): boolean {
  if (password.length < 8 || password.length > 256) return false;
  if (!/^[\x20-\x7e]*$/.test(password)) return false;
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password));
  return classes.length >= 3;
}

/** Error codes and messages as Microsoft Graph returns them. */
export const MESSAGES = {
  insufficientPrivileges: 'Insufficient privileges to complete the operation.',
  notFound: (key: string) =>
    `Resource '${key}' does not exist or one of its queried reference-property objects are not present.`,
  onPremMastered:
    'Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.',
  passwordComplexity:
    'The specified password does not comply with password complexity requirements. Please provide a different password.',
  collectionSegment: (segment: string) =>
    `The request URI is not valid. Since the segment '${segment}' refers to a collection, this must be the last segment in the request URI or it must be followed by an function or action that can be bound to it otherwise all intermediate segments must refer to a single resource.`,
  segmentNotFound: (segment: string) => `Resource not found for the segment '${segment}'.`,
  methodNotAllowed: 'Specified HTTP method is not allowed for the request target.',
  badJson:
    'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.',
  queryParse: 'Bad Request - Error in query syntax.',
  unknownSelect: (property: string) =>
    `Parsing OData Select and Expand failed: Could not find a property named '${property}' on type 'microsoft.graph.user'.`,
  invalidProperty: (property: string) => `Invalid property '${property}'.`,
  readOnlyProperty: (property: string) => `Property '${property}' is read-only and cannot be set.`,
  invalidValue: (property: string) =>
    `Invalid value specified for property '${property}' of resource 'User'.`,
  tokenEmpty: 'Access token is empty.',
  tokenMalformed: 'IDX14100: JWT is not well formed, there are no dots (.).',
  tokenUnreadable:
    'IDX14102: Unable to decode the header or payload of the JWT as a Base64Url encoded JSON object.',
  tokenExpired: 'Lifetime validation failed, the token is expired.',
  tokenNotYetValid: 'Lifetime validation failed, the token is not yet valid.',
  tokenAudience: 'Access token validation failure. Invalid audience.',
  throttled: 'Too many requests. Please try again later.',
  /** GET /users/$count without `ConsistencyLevel: eventual` (seen from Graph in December 2025). */
  countNeedsEventual:
    "Raw count (/$count) is not supported because the 'ConsistencyLevel:eventual' header is missing. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
  /** The OData parser's answer to a segment after $count, $value, an action, ... */
  mustBeLastSegment: (segment: string) =>
    `The request URI is not valid. The segment '${segment}' must be the last segment in the URI because it is one of the following: $ref, $batch, $count, $value, $metadata, a named media resource, an action, a noncomposable function, an action import, a noncomposable function import, an operation with void return type, or an operation import with void return type.`,
  unsupportedFilter: (property: string) =>
    `Unsupported or invalid query filter clause specified for property '${property}' of resource 'User'.`,
  /** `accountEnabled eq 'true'`: the OData parser compares types before the directory sees it. */
  incompatibleFilterTypes: (left: string, right: string) =>
    `A binary operator with incompatible types was detected. Found operand types '${left}' and '${right}' for operator kind 'Equal'.`,
} as const;
