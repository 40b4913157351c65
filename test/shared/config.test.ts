import { SETTINGS, loadConfig } from '../../shared/app/config';

const minimal = {
  AUDIT_TABLE_ENDPOINT: 'https://acct.table.core.windows.net',
  PROTECTED_USERS: 'none',
};

function failure(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toMatchObject({ code: 'InvalidConfiguration', retryable: false });
    return (error as Error).message;
  }
  throw new Error('expected loadConfig to fail');
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(minimal);
    expect(config.queues).toEqual({
      employeeLeaving: 'employee-leaving',
      mfaEnabled: 'mfa-enabled',
    });
    expect(config.graph).toMatchObject({
      endpoint: 'https://graph.microsoft.com',
      scope: 'https://graph.microsoft.com/.default',
      credential: 'managedidentity',
      maxRetries: 2,
      maxRetryWaitSeconds: 10,
    });
    expect(config.graph.managedIdentityClientId).toBeUndefined();
    expect(config.audit.tableName).toBe('OffboardingAudit');
    expect(config.policy.dryRun).toBe(false);
    expect(config.policy.protectedUsers.size).toBe(0);
  });

  it('the sign-in watch is off by default, checks at 1 h and 24 h, and fails closed', () => {
    expect(loadConfig(minimal).signInWatch).toEqual({ enabled: false, afterMinutes: [60, 1440] });
    expect(
      loadConfig({
        ...minimal,
        SIGNIN_WATCH_ENABLED: 'true',
        SIGNIN_WATCH_AFTER_MINUTES: '15, 120',
      }).signInWatch,
    ).toEqual({ enabled: true, afterMinutes: [15, 120] });
    expect(failure({ ...minimal, SIGNIN_WATCH_ENABLED: 'yes' })).toContain('SIGNIN_WATCH_ENABLED');
    for (const bad of ['', ' ', '60,60', '1440,60', '5', '60,', '1,2,3,4,5,6', '60;1440', '11000'])
      if (bad.trim() !== '')
        expect(failure({ ...minimal, SIGNIN_WATCH_AFTER_MINUTES: bad })).toContain(
          'SIGNIN_WATCH_AFTER_MINUTES',
        );
  });

  it('reads the sign-in log from beta unless SIGNIN_LOG_GRAPH_VERSION says v1.0; anything else fails', () => {
    expect(loadConfig(minimal).graph.signInLogVersion).toBe('beta');
    expect(
      loadConfig({ ...minimal, SIGNIN_LOG_GRAPH_VERSION: 'V1.0' }).graph.signInLogVersion,
    ).toBe('v1.0');
    for (const bad of ['v2', 'beta/', '1.0'])
      expect(failure({ ...minimal, SIGNIN_LOG_GRAPH_VERSION: bad })).toContain(
        'SIGNIN_LOG_GRAPH_VERSION',
      );
  });

  it('follows the sovereign cloud in GRAPH_ENDPOINT for the token scope', () => {
    const config = loadConfig({ ...minimal, GRAPH_ENDPOINT: 'https://graph.microsoft.us/' });
    expect(config.graph.endpoint).toBe('https://graph.microsoft.us');
    expect(config.graph.scope).toBe('https://graph.microsoft.us/.default');
  });

  it('reads protected users case-insensitively, separated by commas, semicolons or spaces', () => {
    const config = loadConfig({
      ...minimal,
      PROTECTED_USERS: 'BreakGlass@Contoso.com; 6F1D2C3B-1111-4222-8333-944455556666,x@y.io',
    });
    expect([...config.policy.protectedUsers]).toEqual([
      'breakglass@contoso.com',
      '6f1d2c3b-1111-4222-8333-944455556666',
      'x@y.io',
    ]);
  });

  it('protects nobody only when told so explicitly with "none"', () => {
    expect(loadConfig({ ...minimal, PROTECTED_USERS: 'none' }).policy.protectedUsers.size).toBe(0);
    expect(loadConfig({ ...minimal, PROTECTED_USERS: ' NONE ' }).policy.protectedUsers.size).toBe(
      0,
    );
  });

  // Each of these loaded without a word before and protected nobody.
  it.each([
    ['absent', undefined, /PROTECTED_USERS is required/],
    ['empty', '', /PROTECTED_USERS is required/],
    ['only separators', ' ; , ', /PROTECTED_USERS is empty/],
    [
      'a trailing dot',
      'breakglass@contoso.com.',
      /entry "breakglass@contoso\.com\." must end in a valid domain/,
    ],
    ['a quoted entry', '"breakglass@contoso.com"', /must not contain """/],
    ['a fullwidth letter', 'ｂreakglass@contoso.com', /entry "\\uff42reakglass@contoso\.com"/],
    [
      'a zero-width space',
      'break\u200bglass@contoso.com',
      /entry "break\\u200bglass@contoso\.com"/,
    ],
    ['a percent-encoded @', 'breakglass%40contoso.com', /must not contain "%"/],
    ['none with accounts', 'none, breakglass@contoso.com', /"none" cannot be combined/],
    ['a half GUID', '6f1d2c3b-1111-4222', /must be an object id \(GUID\) or a user principal name/],
  ])('refuses PROTECTED_USERS with %s, naming the entry', (_what, value, expected) => {
    const env: Record<string, string> = { ...minimal };
    if (value === undefined) delete env.PROTECTED_USERS;
    else env.PROTECTED_USERS = value;
    expect(failure(env)).toMatch(expected);
  });

  it.each([
    [{ PROTECTED_USERS: 'none' }, /AUDIT_TABLE_ENDPOINT is required/],
    [{ ...minimal, DRY_RUN: 'yes' }, /DRY_RUN must be "true" or "false"/],
    [
      { ...minimal, GRAPH_ENDPOINT: 'http://graph.microsoft.com' },
      /GRAPH_ENDPOINT must be an https URL/,
    ],
    [{ ...minimal, GRAPH_ENDPOINT: 'graph' }, /GRAPH_ENDPOINT must be an absolute https URL/],
    [
      { ...minimal, GRAPH_CREDENTIAL: 'clientsecret' },
      /GRAPH_CREDENTIAL must be "managedidentity" or "developer"/,
    ],
    [
      { ...minimal, GRAPH_MAX_RETRIES: '9' },
      /GRAPH_MAX_RETRIES must be a whole number from 0 to 5/,
    ],
    [
      { ...minimal, AUDIT_TABLE_NAME: 'audit-log' },
      /AUDIT_TABLE_NAME must be 3-63 letters or digits/,
    ],
  ])('fails fast naming the setting: %o', (env, expected) => {
    expect(failure(env as Record<string, string>)).toMatch(expected);
  });

  it('documents every setting it reads in docs/settings.md, with its default', async () => {
    const { readFile } = await import('node:fs/promises');
    const settingsDoc = await readFile(`${__dirname}/../../docs/settings.md`, 'utf8');
    const rows = settingsDoc.split('\n').filter((line) => line.startsWith('| `'));
    for (const setting of SETTINGS) {
      const row = rows.find((line) => line.startsWith(`| \`${setting.name}\``));
      expect(row).toBeDefined();
      if ('default' in setting) {
        expect(row).toContain(`\`${setting.default}\``);
      }
    }
  });
});
