import { DEFAULT_SESSIONS_VALID_FROM, type SeedUser } from './seed';

/** A user as held by the stand-in (a snapshot copy is handed out; the password never is). */
export interface DirectoryUser {
  id: string;
  userPrincipalName: string;
  displayName: string | null;
  givenName: string | null;
  surname: string | null;
  mail: string | null;
  jobTitle: string | null;
  department: string | null;
  employeeId: string | null;
  officeLocation: string | null;
  mobilePhone: string | null;
  preferredLanguage: string | null;
  businessPhones: string[];
  accountEnabled: boolean;
  userType: 'Member' | 'Guest';
  onPremisesSyncEnabled: boolean | null;
  signInSessionsValidFromDateTime: string;
  externalUserState: string | null;
  creationType: string | null;
  createdDateTime: string;
  lastPasswordChangeDateTime: string;
  passwordPolicies: string | null;
  /** Stand-in only (not a Graph property): directory role held by the user, if any. */
  privilegedRole: string | null;
  /** From the last passwordProfile written (not readable through the API, like real Graph). */
  forceChangePasswordNextSignIn: boolean;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isGuid = (value: string): boolean => GUID.test(value);

/** ISO 8601 UTC with second precision and a Z, the way Graph renders DateTimeOffset values. */
export function graphDateTime(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function userFromSeed(seed: SeedUser): DirectoryUser {
  if (!isGuid(seed.id)) throw new Error(`SeedUser id must be a GUID: ${seed.id}`);
  if (!seed.userPrincipalName) throw new Error('SeedUser userPrincipalName is required');
  const guest = seed.userType === 'Guest';
  return {
    id: seed.id.toLowerCase(),
    userPrincipalName: seed.userPrincipalName,
    displayName: seed.displayName ?? seed.userPrincipalName.split('@')[0] ?? null,
    givenName: seed.givenName ?? null,
    surname: seed.surname ?? null,
    mail: seed.mail !== undefined ? seed.mail : guest ? null : seed.userPrincipalName,
    jobTitle: seed.jobTitle ?? null,
    department: seed.department ?? null,
    employeeId: seed.employeeId ?? null,
    officeLocation: null,
    mobilePhone: null,
    preferredLanguage: null,
    businessPhones: [],
    accountEnabled: seed.accountEnabled ?? true,
    userType: seed.userType ?? 'Member',
    onPremisesSyncEnabled: seed.onPremisesSyncEnabled ?? null,
    signInSessionsValidFromDateTime:
      seed.signInSessionsValidFromDateTime ?? DEFAULT_SESSIONS_VALID_FROM,
    externalUserState:
      seed.externalUserState !== undefined ? seed.externalUserState : guest ? 'Accepted' : null,
    creationType: guest ? 'Invitation' : null,
    createdDateTime: '2023-06-01T09:00:00Z',
    lastPasswordChangeDateTime: '2023-06-01T09:00:00Z',
    passwordPolicies: null,
    privilegedRole: seed.privilegedRole ?? null,
    forceChangePasswordNextSignIn: false,
  };
}

export function snapshot(user: DirectoryUser): DirectoryUser {
  return { ...user, businessPhones: [...user.businessPhones] };
}

/** The stand-in's user store with Graph's addressing rules (id or UPN, case-insensitive). */
export class Directory {
  private readonly byId = new Map<string, DirectoryUser>();
  /** Lower-cased UPN to object id (UPNs are not writable here, so the index never goes stale). */
  private readonly idByUpn = new Map<string, string>();
  private readonly passwords = new Map<string, string>();
  private readonly resets = new Map<string, number>();

  constructor(seed: SeedUser[]) {
    for (const user of seed) this.add(user);
  }

  add(seed: SeedUser): DirectoryUser {
    const user = userFromSeed(seed);
    const clash = this.find(user.userPrincipalName);
    if (clash && clash.id !== user.id) {
      throw new Error(`userPrincipalName already in use: ${user.userPrincipalName}`);
    }
    const previous = this.byId.get(user.id);
    if (previous) this.idByUpn.delete(previous.userPrincipalName.toLowerCase());
    this.byId.set(user.id, user);
    this.idByUpn.set(user.userPrincipalName.toLowerCase(), user.id);
    return user;
  }

  /** Looks a user up by object id or userPrincipalName (both case-insensitive). */
  find(key: string): DirectoryUser | undefined {
    const lower = key.toLowerCase();
    const byId = this.byId.get(lower);
    if (byId) return byId;
    const id = this.idByUpn.get(lower);
    return id === undefined ? undefined : this.byId.get(id);
  }

  all(): DirectoryUser[] {
    return [...this.byId.values()];
  }

  setPassword(id: string, password: string): void {
    this.passwords.set(id, password);
    this.resets.set(id, (this.resets.get(id) ?? 0) + 1);
  }

  lastPasswordOf(idOrUpn: string): string | undefined {
    const user = this.find(idOrUpn);
    return user ? this.passwords.get(user.id) : undefined;
  }

  passwordResetCount(idOrUpn: string): number {
    const user = this.find(idOrUpn);
    return user ? (this.resets.get(user.id) ?? 0) : 0;
  }
}
