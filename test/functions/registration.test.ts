type Registration = { name: string; options: Record<string, unknown> };

/** Loads the function modules in a fresh module registry and records what they register. */
function loadFunctions(...modules: string[]): Registration[] {
  const registered: Registration[] = [];
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { app } = require('@azure/functions') as typeof import('@azure/functions');
    jest.spyOn(app, 'serviceBusQueue').mockImplementation((name: string, options: unknown) => {
      registered.push({ name, options: options as Record<string, unknown> });
    });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    for (const module of modules) require(module);
  });
  return registered;
}

describe('function registration', () => {
  beforeEach(() => {
    process.env.AUDIT_TABLE_ENDPOINT = 'https://acct.table.core.windows.net';
    process.env.ServiceBusConnection__fullyQualifiedNamespace = 'ns.servicebus.windows.net';
    process.env.PROTECTED_USERS = 'breakglass@contoso.com';
  });

  it('registers both queue triggers with the identity-based connection and queue names from settings', () => {
    const registered = loadFunctions('../../functions/index');
    expect(registered.map((r) => [r.name, r.options.connection, r.options.queueName])).toEqual([
      ['employeeLeaving', 'ServiceBusConnection', '%EMPLOYEE_LEAVING_QUEUE%'],
      ['mfaEnabled', 'ServiceBusConnection', '%MFA_ENABLED_QUEUE%'],
    ]);
    expect(registered.every((r) => typeof r.options.handler === 'function')).toBe(true);
  });

  it('refuses to load without a required setting, naming it', () => {
    delete process.env.ServiceBusConnection__fullyQualifiedNamespace;
    expect(() => loadFunctions('../../functions/index')).toThrow(
      /ServiceBusConnection__fullyQualifiedNamespace is required/,
    );
  });

  it('refuses to load without PROTECTED_USERS, or with an entry that protects nobody', () => {
    delete process.env.PROTECTED_USERS;
    expect(() => loadFunctions('../../functions/index')).toThrow(/PROTECTED_USERS is required/);
    process.env.PROTECTED_USERS = 'breakglass@contoso.com.';
    expect(() => loadFunctions('../../functions/index')).toThrow(
      /PROTECTED_USERS entry "breakglass@contoso\.com\."/,
    );
  });
});
