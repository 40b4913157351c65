import { parseUserRef, userPath, type UserRef } from '../../shared/core/userRef';

function ref(value: string): UserRef {
  const parsed = parseUserRef(value);
  if (!parsed.ok) throw new Error(parsed.rule);
  return parsed.ref;
}

describe('userPath', () => {
  it('addresses object ids directly, lower-cased', () => {
    expect(userPath(ref('6F1D2C3B-1111-4222-8333-944455556666'))).toBe(
      '/users/6f1d2c3b-1111-4222-8333-944455556666',
    );
  });

  it('keeps ordinary UPNs readable', () => {
    expect(userPath(ref("o'brien@contoso.com"))).toBe("/users/o'brien@contoso.com");
  });

  it('percent-encodes # in guest UPNs, or Graph would see a URL fragment', () => {
    expect(userPath(ref('carol_fabrikam.com#EXT#@contoso.onmicrosoft.com'))).toBe(
      '/users/carol_fabrikam.com%23EXT%23@contoso.onmicrosoft.com',
    );
  });

  it("uses the users('...') key form for UPNs that start with $, doubling quotes", () => {
    expect(userPath(ref('$svc-legacy@contoso.com'))).toBe("/users('$svc-legacy@contoso.com')");
    expect(userPath(ref("$o'neil@contoso.com"))).toBe("/users('$o''neil@contoso.com')");
  });

  it('does not accept $ anywhere but first', () => {
    expect(parseUserRef('svc$@contoso.com').ok).toBe(false);
  });
});
