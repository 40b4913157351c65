/**
 * infra/ checked against the code: the Bicep CLI cannot run on these machines (CI on GitHub runs
 * `az bicep build`), so these tests read the Bicep, evaluate it in memory for several parameter
 * sets and compare it with shared/config.ts, shared/queuePolicy.ts and shared/graph/permissions.ts.
 * The second half proves the checks bite: each drift is introduced in memory and must be reported.
 */
import { join } from 'node:path';

import { SETTINGS } from '../../shared/config';
import { requiredGraphPermissions } from '../../shared/graph/permissions';
import { QUEUE_POLICY } from '../../shared/queuePolicy';
import { Deployment, parseBicep, type ResourceInstance } from './bicep';
import {
  checkInfra,
  loadInfraFiles,
  MAIN,
  PRINCIPALS,
  SCENARIOS,
  type Contract,
  type Finding,
} from './checks';
import { ROLES } from './expectations';

const contract: Contract = {
  settings: SETTINGS,
  queuePolicy: QUEUE_POLICY,
  requiredGraphPermissions,
};
const files = loadInfraFiles(join(__dirname, '..', '..'));
const findings = (f: Record<string, string>): Finding[] => checkInfra(f, contract);

const SERVICE_BUS = 'infra/modules/servicebus.bicep';
const STORAGE = 'infra/modules/storage.bicep';
const FUNCTION_APP = 'infra/modules/functionapp.bicep';
const GRAPH = 'infra/modules/graph-permissions.bicep';
const MONITORING = 'infra/modules/monitoring.bicep';

/** Replaces `from` (which must occur exactly once) in one file, in memory. */
function mutate(
  path: string,
  from: string | RegExp,
  to: string,
  source = files,
): Record<string, string> {
  const text = source[path];
  if (text === undefined) throw new Error(`no file ${path}`);
  const count =
    typeof from === 'string'
      ? text.split(from).length - 1
      : (text.match(new RegExp(from.source, `${from.flags.replace('g', '')}g`)) ?? []).length;
  if (count !== 1)
    throw new Error(
      `mutation target ${String(from)} occurs ${count} times in ${path}; the test needs updating`,
    );
  return { ...source, [path]: text.replace(from, to) };
}

/** Removes a top-level declaration (resource, module, var...) by its symbol. */
function removeDeclaration(path: string, symbol: string): Record<string, string> {
  const text = files[path] as string;
  const parsed = parseBicep(path, text);
  const decl = [...parsed.resources, ...parsed.modules].find((d) => d.symbol === symbol);
  if (decl === undefined) throw new Error(`${path} has no declaration ${symbol}`);
  return { ...files, [path]: text.slice(0, decl.start) + text.slice(decl.end) };
}

function expectFinding(result: Finding[], code: string, ...fragments: string[]): void {
  const hit = result.find((f) => f.code === code && fragments.every((t) => f.message.includes(t)));
  if (hit === undefined) {
    throw new Error(
      `expected a "${code}" finding mentioning ${fragments.map((t) => JSON.stringify(t)).join(', ')}; got:\n${JSON.stringify(result, null, 2)}`,
    );
  }
}

function deploy(scenario: number): ResourceInstance[] {
  const s = SCENARIOS[scenario];
  if (s === undefined) throw new Error(`no scenario ${scenario}`);
  return new Deployment(files, MAIN, s.params).resources();
}

describe('infra matches the code', () => {
  test('no finding in any scenario', () => {
    expect(findings(files)).toEqual([]);
  });

  test('the evaluation sees what the checks reason about (guards against vacuous passes)', () => {
    const count = (rs: ResourceInstance[], type: string) =>
      rs.filter((r) => r.type === type && !r.existing).length;
    const defaults = deploy(0);
    const everything = deploy(1);
    const scriptPath = deploy(2);
    // Function identity: 2 queues x (receiver, sender) + blob owner + table contributor + metrics publisher.
    expect(count(defaults, 'Microsoft.Authorization/roleAssignments')).toBe(7);
    // + HR sender + (ops group, deployer) x (4 queue roles + audit reader).
    expect(count(everything, 'Microsoft.Authorization/roleAssignments')).toBe(7 + 1 + 2 * 5);
    expect(count(defaults, 'Microsoft.Graph/appRoleAssignedTo')).toBe(
      requiredGraphPermissions(false).length,
    );
    expect(count(everything, 'Microsoft.Graph/appRoleAssignedTo')).toBe(
      requiredGraphPermissions(true).length,
    );
    expect(count(scriptPath, 'Microsoft.Graph/appRoleAssignedTo')).toBe(0);
    expect(
      defaults
        .filter((r) => r.type === 'Microsoft.ServiceBus/namespaces/queues')
        .map((r) => r.name),
    ).toEqual([
      SETTINGS.find((s) => s.name === 'EMPLOYEE_LEAVING_QUEUE')?.default,
      SETTINGS.find((s) => s.name === 'MFA_ENABLED_QUEUE')?.default,
    ]);
    const config = defaults.find((r) => r.type === 'Microsoft.Web/sites/config');
    const settings = Object.keys(config?.body.properties as object);
    for (const s of SETTINGS.filter((x) => x.requiredInAzure)) expect(settings).toContain(s.name);
    expect(count(everything, 'Microsoft.Insights/metricAlerts')).toBe(2 + 1 + 1);
    expect(count(defaults, 'Microsoft.Insights/metricAlerts')).toBe(2 + 1);
  });

  test('the optional principals get nothing unless their parameter is set', () => {
    const principals = deploy(0)
      .filter((r) => r.type === 'Microsoft.Authorization/roleAssignments')
      .map((r) => (r.body.properties as Record<string, unknown>).principalId);
    for (const id of Object.values(PRINCIPALS)) expect(principals).not.toContain(id);
  });
});

describe('drift is reported', () => {
  test.each(SETTINGS.filter((s) => s.requiredInAzure).map((s) => s.name))(
    'app setting %s removed',
    (name) => {
      const drifted = mutate(FUNCTION_APP, new RegExp(`^\\s*${name}:.*\\n`, 'm'), '');
      expectFinding(findings(drifted), 'setting-missing', name);
    },
  );

  test('an app setting the code does not read', () => {
    const drifted = mutate(
      FUNCTION_APP,
      "    DRY_RUN: dryRun ? 'true' : 'false'\n",
      "    DRY_RUN: dryRun ? 'true' : 'false'\n    GRAPH_TIMEOUT: '30'\n",
    );
    expectFinding(findings(drifted), 'setting-unknown', 'GRAPH_TIMEOUT');
  });

  test('a local-development-only connection string set in Azure', () => {
    const drifted = mutate(
      FUNCTION_APP,
      '    AUDIT_TABLE_NAME: auditTableName\n',
      "    AUDIT_TABLE_NAME: auditTableName\n    AUDIT_TABLE_CONNECTION_STRING: 'UseDevelopmentStorage=true'\n",
    );
    const result = findings(drifted);
    expectFinding(result, 'setting-forbidden', 'AUDIT_TABLE_CONNECTION_STRING');
    expectFinding(result, 'secret', 'AUDIT_TABLE_CONNECTION_STRING');
  });

  test('a Service Bus connection string instead of the identity', () => {
    const drifted = mutate(
      FUNCTION_APP,
      "    ServiceBusConnection__credential: 'managedidentity'\n",
      "    ServiceBusConnection__credential: 'managedidentity'\n    ServiceBusConnection: 'Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=abc'\n",
    );
    const result = findings(drifted);
    expectFinding(result, 'secret', 'SharedAccessKey');
    expectFinding(result, 'setting-forbidden', 'ServiceBusConnection');
  });

  test('a key credential for the function identity setting', () => {
    expectFinding(
      findings(
        mutate(
          FUNCTION_APP,
          "ServiceBusConnection__credential: 'managedidentity'",
          "ServiceBusConnection__credential: 'connectionstring'",
        ),
      ),
      'setting-value',
      'ServiceBusConnection__credential',
    );
    expectFinding(
      findings(mutate(FUNCTION_APP, 'AZURE_CLIENT_ID: identityClientId', "AZURE_CLIENT_ID: ''")),
      'setting-value',
      'AZURE_CLIENT_ID',
    );
  });

  test('a queue renamed', () => {
    const result = findings(mutate(MAIN, "mfaEnabled: 'mfa-enabled'", "mfaEnabled: 'mfa-enable'"));
    expectFinding(result, 'queue-missing', 'mfa-enabled');
    expectFinding(result, 'setting-value', 'MFA_ENABLED_QUEUE', 'mfa-enable');
  });

  test('the audit table renamed', () => {
    const result = findings(
      mutate(MAIN, "var auditTableName = 'OffboardingAudit'", "var auditTableName = 'Audit'"),
    );
    expectFinding(result, 'setting-value', 'AUDIT_TABLE_NAME', 'OffboardingAudit');
  });

  const policyKeys = Object.entries(QUEUE_POLICY).filter(([key]) => !key.endsWith('Ms'));
  test.each(policyKeys)('queue property %s differs from QUEUE_POLICY', (key, value) => {
    const literal = typeof value === 'string' ? `'${value}'` : String(value);
    const changed =
      typeof value === 'number'
        ? String(value + 1)
        : typeof value === 'boolean'
          ? String(!value)
          : `'${value.replace(/\d+/, (n) => String(Number(n) + 1))}'`;
    const drifted = mutate(
      SERVICE_BUS,
      new RegExp(`^(\\s*${key}): ${literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'),
      `$1: ${changed}`,
    );
    expectFinding(findings(drifted), 'queue-property', key);
  });

  test('local authentication (keys) turned back on', () => {
    expectFinding(
      findings(mutate(SERVICE_BUS, 'disableLocalAuth: true', 'disableLocalAuth: false')),
      'local-auth',
      'disableLocalAuth',
    );
    expectFinding(
      findings(mutate(STORAGE, 'allowSharedKeyAccess: false', 'allowSharedKeyAccess: true')),
      'local-auth',
      'allowSharedKeyAccess',
    );
    expectFinding(
      findings(mutate(MONITORING, 'DisableLocalAuth: true', 'DisableLocalAuth: false')),
      'local-auth',
      'DisableLocalAuth',
    );
  });

  test('listKeys() anywhere', () => {
    const drifted = mutate(
      STORAGE,
      'output name string = storage.name\n',
      'output name string = storage.name\noutput key string = storage.listKeys().keys[0].value\n',
    );
    expectFinding(findings(drifted), 'secret', 'listKeys');
  });

  test('a storage connection string or instrumentation key', () => {
    expectFinding(
      findings(
        mutate(
          FUNCTION_APP,
          'APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString',
          "APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=00000000-0000-0000-0000-000000000000'",
        ),
      ),
      'secret',
      'InstrumentationKey',
    );
    expectFinding(
      findings(
        mutate(
          FUNCTION_APP,
          "AzureWebJobsStorage__credential: 'managedidentity'",
          "AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc'",
        ),
      ),
      'secret',
      'AccountKey',
    );
  });

  test('a Service Bus authorization rule (shared access key)', () => {
    const drifted = mutate(
      SERVICE_BUS,
      'output name string = namespace.name\n',
      "resource sendRule 'Microsoft.ServiceBus/namespaces/authorizationRules@2024-01-01' = {\n  parent: namespace\n  name: 'send'\n  properties: {\n    rights: [\n      'Send'\n    ]\n  }\n}\n\noutput name string = namespace.name\n",
    );
    expectFinding(findings(drifted), 'secret', 'authorizationRules');
  });

  const graphAlways = requiredGraphPermissions(false);
  test.each(graphAlways)('Graph permission %s no longer granted', (permission) => {
    expectFinding(findings(mutate(GRAPH, `  '${permission}'\n`, '')), 'graph-missing', permission);
  });

  test.each(['User.ReadWrite.All', 'Directory.ReadWrite.All', 'Directory.Read.All'])(
    'an unneeded Graph permission %s',
    (permission) => {
      const drifted = mutate(
        GRAPH,
        "  'User.EnableDisableAccount.All'\n",
        `  'User.EnableDisableAccount.All'\n  '${permission}'\n`,
      );
      expectFinding(findings(drifted), 'graph-unneeded', permission);
    },
  );

  test('the password permission granted unconditionally', () => {
    const password = requiredGraphPermissions(true).find((p) => !graphAlways.includes(p)) as string;
    expectFinding(
      findings(mutate(GRAPH, '= if (enablePasswordReset) {', '= {')),
      'graph-unconditional',
      password,
    );
    expectFinding(
      findings(
        mutate(
          GRAPH,
          "  'User.EnableDisableAccount.All'\n",
          `  'User.EnableDisableAccount.All'\n  '${password}'\n`,
        ),
      ),
      'graph-unconditional',
      password,
    );
  });

  test('the password permission missing when resets are enabled', () => {
    const password = requiredGraphPermissions(true).find((p) => !graphAlways.includes(p)) as string;
    expectFinding(
      findings(removeDeclaration(GRAPH, 'passwordResetGrant')),
      'graph-missing',
      password,
      'password resets',
    );
  });

  test('a Graph permission given by GUID instead of by name', () => {
    const drifted = mutate(
      GRAPH,
      'appRoleId: filter(microsoftGraph.appRoles, role => role.value == passwordResetPermission)[0].id',
      "appRoleId: 'cc117bb9-00cf-4eb8-b580-ea2a878fe8f7'",
    );
    expectFinding(findings(drifted), 'graph-form', 'looked up by value');
  });

  test('the Graph extension missing from bicepconfig.json', () => {
    expectFinding(
      findings(mutate('infra/bicepconfig.json', '"microsoftGraphV1"', '"graph"')),
      'graph-form',
      'bicepconfig.json',
    );
  });

  const roleDecls = Object.keys(files)
    .filter((p) => p.endsWith('.bicep'))
    .flatMap((path) =>
      parseBicep(path, files[path] as string)
        .resources.filter((r) => r.type === 'Microsoft.Authorization/roleAssignments')
        .map((r) => [path, r.symbol] as const),
    );
  test('every role assignment in infra/ is covered below', () => {
    expect(roleDecls.length).toBeGreaterThanOrEqual(11);
  });
  test.each(roleDecls)('role assignment removed: %s %s', (path, symbol) => {
    expectFinding(findings(removeDeclaration(path, symbol)), 'role-missing');
  });

  test('a broader Service Bus role (Data Owner instead of Data Receiver)', () => {
    const result = findings(
      mutate(
        SERVICE_BUS,
        `'${ROLES.serviceBusDataReceiver}'`,
        "'090c5cfd-751d-490a-894a-3ce6f1109419'",
      ),
    );
    expectFinding(result, 'role-forbidden', 'Azure Service Bus Data Owner');
    expectFinding(result, 'role-missing', 'Azure Service Bus Data Receiver');
  });

  test('Contributor on the resource group', () => {
    const drifted = mutate(
      STORAGE,
      'output name string = storage.name\n',
      "resource contributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n  name: guid(resourceGroup().id, functionPrincipalId, 'contributor')\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b24988ac-6180-42a0-ab88-20f7382dd24c')\n    principalId: functionPrincipalId\n    principalType: 'ServicePrincipal'\n  }\n}\n\noutput name string = storage.name\n",
    );
    const result = findings(drifted);
    expectFinding(result, 'role-forbidden', 'Contributor');
    expectFinding(result, 'role-scope', 'deployment scope');
  });

  test('a Service Bus role on the namespace instead of the queue', () => {
    const drifted = mutate(
      SERVICE_BUS,
      /(resource functionReceiveEmployeeLeaving[^]*?scope: )employeeLeavingQueue/,
      '$1namespace',
    );
    expectFinding(findings(drifted), 'role-scope', 'namespace');
  });

  test('the HR publisher allowed to send to the wrong queue', () => {
    const drifted = mutate(
      SERVICE_BUS,
      /(resource hrSendEmployeeLeaving[^]*?scope: )employeeLeavingQueue/,
      '$1mfaEnabledQueue',
    );
    const result = findings(drifted);
    expectFinding(result, 'role-unexpected', 'hrPublisher', 'mfa-enabled');
    expectFinding(result, 'role-missing', 'hrPublisher');
  });

  test('the deploying user given ops access by default', () => {
    const result = findings(
      mutate(MAIN, 'grantDeployerOpsAccess && !empty(principalId)', '!empty(principalId)'),
    );
    expectFinding(result, 'role-unexpected', 'deployer', '(defaults)');
  });

  test('principalType not set', () => {
    const drifted = mutate(MONITORING, "    principalType: 'ServicePrincipal'\n", '');
    expectFinding(findings(drifted), 'role-principal-type', 'principalType is not set');
  });

  test('a role assignment name that is not guid(scope, principal, role)', () => {
    const drifted = mutate(
      MONITORING,
      'name: guid(applicationInsights.id, functionPrincipalId, monitoringMetricsPublisher)',
      'name: guid(functionPrincipalId, monitoringMetricsPublisher)',
    );
    expectFinding(findings(drifted), 'role-name', 'guid(scope.id, principalId, roleDefinitionId)');
  });

  test('DRY_RUN off on the first deploy, and the two parameter defaults disagreeing', () => {
    const result = findings(mutate(MAIN, 'param dryRun bool = true', 'param dryRun bool = false'));
    expectFinding(result, 'setting-value', 'DRY_RUN');
    expectFinding(result, 'azd', 'dryRun');
  });

  test('main.parameters.json out of step with main.bicep', () => {
    expectFinding(
      findings(
        mutate(
          'infra/main.parameters.json',
          '"environmentName": { "value": "${AZURE_ENV_NAME}" },',
          '',
        ),
      ),
      'azd',
      'environmentName',
    );
    expectFinding(
      findings(
        mutate(
          'infra/main.parameters.json',
          '"${LOG_RETENTION_DAYS=90}"',
          '"${LOG_RETENTION_DAYS=30}"',
        ),
      ),
      'azd',
      'logRetentionDays',
    );
  });

  test('the resource token or azd tags changed', () => {
    expectFinding(
      findings(
        mutate(
          MAIN,
          'toLower(uniqueString(subscription().id, environmentName, location))',
          'toLower(uniqueString(subscription().id, environmentName))',
        ),
      ),
      'azd',
      'resourceToken',
    );
    expectFinding(
      findings(mutate(FUNCTION_APP, "'azd-service-name': 'api'", "'azd-service-name': 'web'")),
      'azd',
      'azd-service-name',
    );
  });

  test('not Flex Consumption on Node 22', () => {
    expectFinding(
      findings(mutate(FUNCTION_APP, "version: '22'", "version: '20'")),
      'flex',
      'node 22',
    );
    expectFinding(findings(mutate(FUNCTION_APP, "name: 'FC1'", "name: 'Y1'")), 'flex', 'FC1');
    expectFinding(
      findings(
        mutate(
          FUNCTION_APP,
          "type: 'UserAssignedIdentity'",
          "type: 'StorageAccountConnectionString'",
        ),
      ),
      'flex',
      'deployment storage',
    );
  });

  test('a queue left without a dead-letter alert', () => {
    const drifted = mutate(
      MAIN,
      /(queueNames: \[\n\s*queueNames\.employeeLeaving\n)\s*queueNames\.mfaEnabled\n/,
      '$1',
    );
    expectFinding(findings(drifted), 'alerts', 'DeadletteredMessages', 'mfa-enabled');
  });

  test('Log Analytics retention not following its parameter', () => {
    expectFinding(
      findings(mutate(MONITORING, 'retentionInDays: retentionInDays', 'retentionInDays: 30')),
      'monitoring',
      'retention',
    );
  });

  test('Bicep the test parser does not understand fails loudly instead of passing', () => {
    const drifted = mutate(
      MAIN,
      "targetScope = 'subscription'\n",
      "targetScope = 'subscription'\n\ntype principal = { id: string }\n",
    );
    expectFinding(findings(drifted), 'evaluation', 'not supported');
  });
});
