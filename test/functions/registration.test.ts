type Registration = { name: string; options: Record<string, unknown> };

/**
 * Loads the function modules in a fresh module registry and records what they register. With
 * `host`, `@azure/functions-core` answers as the Functions host's worker makes it (nothing
 * installs it; only the worker provides it).
 */
function loadFunctions(...modules: string[]): Registration[] {
  return loadFunctionsWith({}, ...modules).registered;
}

function loadFunctionsWith(
  options: { host?: boolean },
  ...modules: string[]
): { registered: Registration[]; warmUps: () => number } {
  const registered: Registration[] = [];
  let warmUps = 0;
  jest.isolateModules(() => {
    // Outside the host, requiring it fails, as in a plain `node` process.
    jest.doMock(
      '@azure/functions-core',
      () => {
        if (options.host === true) return {};
        throw new Error("Cannot find module '@azure/functions-core'");
      },
      { virtual: true },
    );
    type RuntimeModule = typeof import('../../shared/app/runtime');
    // The process-wide runtime the module will get, its warm-up counted instead of run. A
    // setting missing makes this throw as loading the module would.
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const shared = (require('../../shared/app/runtime') as RuntimeModule).getRuntime();
      shared.warmUp = () => {
        warmUps += 1;
        return Promise.resolve();
      };
    } catch {
      // Loading the function module below reports it.
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { app } = require('@azure/functions') as typeof import('@azure/functions');
    jest.spyOn(app, 'serviceBusQueue').mockImplementation((name: string, options: unknown) => {
      registered.push({ name, options: options as Record<string, unknown> });
    });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    for (const module of modules) require(module);
  });
  return { registered, warmUps: () => warmUps };
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

  it('under the Functions host, warms up once after registering; elsewhere never', async () => {
    const underHost = loadFunctionsWith({ host: true }, '../../functions/index');
    expect(underHost.registered).toHaveLength(2);
    // After the module has loaded (the host gets its registrations first), on the next turn.
    expect(underHost.warmUps()).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(underHost.warmUps()).toBe(1);

    const elsewhere = loadFunctionsWith({}, '../../functions/index');
    await new Promise((resolve) => setImmediate(resolve));
    expect(elsewhere.warmUps()).toBe(0);
  });
});
