/**
 * A user as named by an event: an Entra object id or a user principal name, validated and
 * normalised, plus the Graph path that addresses it.
 */
export type UserRef = { kind: 'objectId'; value: string } | { kind: 'upn'; value: string };

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Characters Entra allows in the part before @ (plus '$' as the very first character).
const UPN_LOCAL = /^\$?[A-Za-z0-9'._!#^~-]+$/;
const DOMAIN_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const MAX_UPN_LENGTH = 113;
const MAX_LOCAL_LENGTH = 64;
const MAX_DOMAIN_LENGTH = 48;

/** Returns the reason a value is not a usable user identifier, or the parsed reference. */
export function parseUserRef(
  input: string,
): { ok: true; ref: UserRef } | { ok: false; rule: string } {
  if (GUID.test(input)) return { ok: true, ref: { kind: 'objectId', value: input.toLowerCase() } };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(input))
    return { ok: false, rule: 'must not contain control characters' };
  if (/\s/.test(input)) return { ok: false, rule: 'must not contain white space' };
  for (const forbidden of [
    '/',
    '?',
    '&',
    '%',
    '\\',
    '"',
    '<',
    '>',
    ',',
    ';',
    ':',
    '(',
    ')',
    '*',
    '=',
    '+',
  ]) {
    if (input.includes(forbidden)) return { ok: false, rule: `must not contain "${forbidden}"` };
  }
  const at = input.lastIndexOf('@');
  if (at <= 0 || at === input.length - 1 || input.indexOf('@') !== at) {
    return {
      ok: false,
      rule: 'must be an object id (GUID) or a user principal name (name@domain)',
    };
  }
  if (input.length > MAX_UPN_LENGTH) {
    return { ok: false, rule: `must be at most ${MAX_UPN_LENGTH} characters (Entra's UPN limit)` };
  }
  const local = input.slice(0, at);
  const domain = input.slice(at + 1);
  if (local.length > MAX_LOCAL_LENGTH) {
    return { ok: false, rule: `must have at most ${MAX_LOCAL_LENGTH} characters before "@"` };
  }
  if (
    !UPN_LOCAL.test(local) ||
    local.startsWith('.') ||
    local.endsWith('.') ||
    local.includes('..')
  ) {
    return {
      ok: false,
      rule: 'must use only letters, digits and \' . - _ ! # ^ ~ before "@" (a leading $ is allowed), with no leading, trailing or double dot',
    };
  }
  const labels = domain.split('.');
  if (
    domain.length > MAX_DOMAIN_LENGTH ||
    labels.length < 2 ||
    !labels.every((label) => DOMAIN_LABEL.test(label)) ||
    !/^[A-Za-z]{2,}$/.test(labels[labels.length - 1] ?? '')
  ) {
    return {
      ok: false,
      rule: 'must end in a valid domain name after "@" (for example contoso.com)',
    };
  }
  return { ok: true, ref: { kind: 'upn', value: input } };
}

/**
 * The Graph path that addresses the user. Graph's addressing rules: '#' (guest UPNs carry #EXT#)
 * must be percent-encoded or everything after it is a URL fragment, and a UPN starting with '$'
 * must use the OData key form users('...') or Graph reads it as a system query segment.
 */
export function userPath(ref: UserRef): string {
  if (ref.kind === 'objectId') return `/users/${ref.value}`;
  if (ref.value.startsWith('$')) {
    return `/users('${encodeUpn(ref.value.replace(/'/g, "''"))}')`;
  }
  return `/users/${encodeUpn(ref.value)}`;
}

function encodeUpn(upn: string): string {
  // Keep '@', '$' and quotes readable; everything else that is not URL-safe is percent-encoded.
  return encodeURIComponent(upn).replace(/%40/g, '@').replace(/%24/g, '$');
}

export function describeUserRef(ref: UserRef): string {
  return ref.kind === 'objectId' ? `object id ${ref.value}` : `UPN ${ref.value}`;
}
