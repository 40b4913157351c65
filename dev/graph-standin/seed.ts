/** A user to put into the stand-in directory. Only `id` and `userPrincipalName` are required. */
export interface SeedUser {
  /** Object id (GUID). */
  id: string;
  userPrincipalName: string;
  displayName?: string;
  /** Default true. */
  accountEnabled?: boolean;
  /** Default 'Member'. */
  userType?: 'Member' | 'Guest';
  /** true for users synchronised from on-premises AD (Entra Connect); default null (cloud-only). */
  onPremisesSyncEnabled?: boolean | null;
  /** ISO date-time; default {@link DEFAULT_SESSIONS_VALID_FROM}. */
  signInSessionsValidFromDateTime?: string;
  /**
   * Name of a directory role the user holds (e.g. 'Global Administrator'). Sensitive attributes
   * (accountEnabled, passwordProfile) of such users can only be changed by an app holding a role
   * at least as privileged; see GraphStandInOptions.appDirectoryRole.
   */
  privilegedRole?: string;
  /** Default: the UPN for members, null for guests unless given. */
  mail?: string | null;
  givenName?: string | null;
  surname?: string | null;
  jobTitle?: string | null;
  department?: string | null;
  employeeId?: string | null;
  /** For guests; default 'Accepted' for guests, null for members. */
  externalUserState?: string | null;
}

/** Default signInSessionsValidFromDateTime for seeded users: safely in the past. */
export const DEFAULT_SESSIONS_VALID_FROM = '2024-01-15T08:30:00Z';

export const ALICE_ID = 'a11ce000-0000-4000-8000-000000000001';
export const ALICE_UPN = 'alice@contoso.com';
export const BOB_ID = 'b0b00000-0000-4000-8000-000000000002';
export const BOB_UPN = 'bob@contoso.com';
/** Guest (B2B) user: the UPN contains `#EXT#`, which must be sent as `%23EXT%23`. */
export const GUEST_ID = 'ca201000-0000-4000-8000-000000000003';
export const GUEST_UPN = 'carol_fabrikam.com#EXT#@contoso.onmicrosoft.com';
/** UPN starting with `$`: addressable only as `/users('$svc-legacy@contoso.com')` (or by id). */
export const DOLLAR_ID = 'd011a500-0000-4000-8000-000000000004';
export const DOLLAR_UPN = '$svc-legacy@contoso.com';
/** Synchronised from on-premises AD: cloud writes of accountEnabled/passwordProfile fail with 400. */
export const SYNCED_ID = 'da7e0000-0000-4000-8000-000000000005';
export const SYNCED_UPN = 'dave.synced@contoso.com';
/** Holds the Global Administrator role. */
export const ADMIN_ID = 'ad000000-0000-4000-8000-000000000006';
export const ADMIN_UPN = 'erin.admin@contoso.com';
/** Emergency-access account (also a Global Administrator, as break-glass accounts are). */
export const BREAKGLASS_ID = 'b4ea6000-0000-4000-8000-000000000007';
export const BREAKGLASS_UPN = 'breakglass@contoso.com';

/** The seeded users, keyed by a short name, for tests that iterate over them. */
export const SEEDED = {
  alice: { id: ALICE_ID, upn: ALICE_UPN },
  bob: { id: BOB_ID, upn: BOB_UPN },
  guest: { id: GUEST_ID, upn: GUEST_UPN },
  dollar: { id: DOLLAR_ID, upn: DOLLAR_UPN },
  synced: { id: SYNCED_ID, upn: SYNCED_UPN },
  admin: { id: ADMIN_ID, upn: ADMIN_UPN },
  breakglass: { id: BREAKGLASS_ID, upn: BREAKGLASS_UPN },
} as const;

/** A small fixed directory (fresh objects on every call). */
export function defaultSeed(): SeedUser[] {
  return [
    {
      id: ALICE_ID,
      userPrincipalName: ALICE_UPN,
      displayName: 'Alice Anderson',
      givenName: 'Alice',
      surname: 'Anderson',
      jobTitle: 'Accountant',
      department: 'Finance',
      employeeId: 'E1001',
    },
    {
      id: BOB_ID,
      userPrincipalName: BOB_UPN,
      displayName: 'Bob Brown',
      givenName: 'Bob',
      surname: 'Brown',
      jobTitle: 'Engineer',
      department: 'R&D',
      employeeId: 'E1002',
    },
    {
      id: GUEST_ID,
      userPrincipalName: GUEST_UPN,
      displayName: 'Carol (Fabrikam)',
      userType: 'Guest',
      mail: 'carol@fabrikam.com',
    },
    {
      id: DOLLAR_ID,
      userPrincipalName: DOLLAR_UPN,
      displayName: 'Legacy service account',
    },
    {
      id: SYNCED_ID,
      userPrincipalName: SYNCED_UPN,
      displayName: 'Dave Synced',
      givenName: 'Dave',
      surname: 'Synced',
      onPremisesSyncEnabled: true,
      employeeId: 'E1005',
    },
    {
      id: ADMIN_ID,
      userPrincipalName: ADMIN_UPN,
      displayName: 'Erin Admin',
      givenName: 'Erin',
      surname: 'Admin',
      privilegedRole: 'Global Administrator',
    },
    {
      id: BREAKGLASS_ID,
      userPrincipalName: BREAKGLASS_UPN,
      displayName: 'Break Glass (emergency access)',
      privilegedRole: 'Global Administrator',
    },
  ];
}
