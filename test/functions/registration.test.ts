import { app } from '@azure/functions';

describe('function registration', () => {
  const registered: Array<{ name: string; options: Record<string, unknown> }> = [];

  beforeAll(() => {
    jest.spyOn(app, 'serviceBusQueue').mockImplementation((name: string, options: unknown) => {
      registered.push({ name, options: options as Record<string, unknown> });
    });
  });

  it('registers both queue triggers with the identity-based connection and queue names from settings', () => {
    jest.isolateModules(() => {
      process.env.AUDIT_TABLE_ENDPOINT = 'https://acct.table.core.windows.net';
      process.env.ServiceBusConnection__fullyQualifiedNamespace = 'ns.servicebus.windows.net';
      require('../../functions/employeeLeaving');
      require('../../functions/mfaEnabled');
    });
    expect(registered.map((r) => [r.name, r.options.connection, r.options.queueName])).toEqual([
      ['employeeLeaving', 'ServiceBusConnection', '%EMPLOYEE_LEAVING_QUEUE%'],
      ['mfaEnabled', 'ServiceBusConnection', '%MFA_ENABLED_QUEUE%'],
    ]);
    expect(registered.every((r) => typeof r.options.handler === 'function')).toBe(true);
  });

  it('refuses to load without a required setting, naming it', () => {
    delete process.env.ServiceBusConnection__fullyQualifiedNamespace;
    jest.isolateModules(() => {
      expect(() => require('../../functions/mfaEnabled')).toThrow(/ServiceBusConnection__fullyQualifiedNamespace is required/);
    });
  });
});
