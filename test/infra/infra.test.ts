/**
 * infra/ against the code, where the Bicep compiler (dev/bicep.sh check, in CI) cannot judge:
 * 1. infra/contract.json must be exactly what dev/infra-contract.ts generates from shared/ now;
 * 2. the Bicep must read the code's values from it and pass structural checks (checks.ts);
 * 3. each kind of drift that matters, injected into a copy of the text, must be reported.
 */
import { spawnSync } from 'node:child_process';
import { AppMessageIdPrefixes } from '../../shared/core/messaging';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildInfraContract, CONTRACT_PATH } from '../../dev/infra-contract';
import { inject, loadInfraFiles, type InfraFiles } from './bicepText';
import {
  ALERTS,
  checkInfra,
  EXPECTED_ROLES,
  FUNCTION_APP,
  GRAPH,
  MAIN,
  MONITORING,
  PARAMETERS,
  SERVICE_BUS,
  STORAGE,
  WORKBOOK,
} from './checks';

const ROOT = join(__dirname, '..', '..');
const contract = buildInfraContract();
const files = loadInfraFiles(ROOT);
const findings = (f: InfraFiles) => checkInfra(f, contract);

describe('infra/contract.json', () => {
  test('is what the code generates now (dist/, built by pretest)', () => {
    const check = spawnSync(process.execPath, ['dist/dev/infra-contract.js', '--check'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(check.stderr).toBe('');
    expect(check.stdout).toBe(`${CONTRACT_PATH} is up to date.\n`);
  });

  test('its app MessageId prefixes are the ones the code gives the copies it sends', () => {
    // A prefix written out by hand would let the app's own copies count as HR events in the "no
    // events" alert: every id the app makes takes its prefix from AppMessageIdPrefixes.
    expect(contract.appMessageIdPrefixes).toEqual(Object.values(AppMessageIdPrefixes));
    const sources = ['shared', 'cli'].flatMap((dir) =>
      readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .map((f) => readFileSync(join(ROOT, dir, f), 'utf8')),
    );
    const handWritten = sources.flatMap((s) =>
      [...s.matchAll(/`([a-z]+[-:])\$\{/g)].map((m) => m[1] as string),
    );
    expect(handWritten.filter((p) => /^(retry|wait|outage|leave|replay|cli)/.test(p))).toEqual([]);
  });
});

describe('the postprovision hook', () => {
  const hook = (env: Record<string, string>) =>
    spawnSync(process.execPath, [join(ROOT, 'infra', 'scripts', 'postprovision.mjs')], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', ...env },
    });

  test('names the privileged grant step and the lock step until the environment says they are done', () => {
    const r = hook({ MANAGED_IDENTITY_PRINCIPAL_ID: 'p-1' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('infra/scripts/grant-graph-permissions.sh --principal-id p-1');
    expect(r.stdout).toContain('azd env set AUDIT_LOG_POLICY_LOCKED true');
    expect(r.stdout).toContain('DRY_RUN is true');
  });

  test('asks for an administrative unit for password resets, and is quiet when all is done', () => {
    const granted = {
      GRAPH_PERMISSIONS_GRANTED: 'true',
      AUDIT_LOG_POLICY_LOCKED: 'true',
      DRY_RUN: 'false',
    };
    expect(hook({ ...granted, ENABLE_PASSWORD_RESET: 'true' }).stdout).toContain('--admin-unit');
    expect(hook(granted).stdout.trim()).toBe('');
  });
});

describe('infra matches the code', () => {
  test('no finding', () => {
    expect(findings(files)).toEqual([]);
  });

  test('the checks see what they reason about (no vacuous pass)', () => {
    expect(contract.appSettings.requiredInAzure.length).toBeGreaterThanOrEqual(10);
    expect(EXPECTED_ROLES.length).toBe(15);
    expect(files[MAIN]).toContain("loadJsonContent('contract.json')");
  });
});

/** [what drifted, file, from, to, a fragment of the expected finding] */
// prettier-ignore
const DRIFTS: [string, string, string | RegExp, string, string][] = [
  // Values the code owns, restated instead of read from the contract.
  ['a queue name restated', MAIN, 'var queueNames = contract.queues', "var queueNames = { employeeLeaving: 'employee-leaving', mfaEnabled: 'mfa-enabled' }", 'restates employee-leaving'],
  ['the audit table restated', MAIN, 'var auditTableName = contract.auditTableName', "var auditTableName = 'OffboardingAudit'", 'restates OffboardingAudit'],
  ['a role GUID restated', STORAGE, 'contract.roles.storageTableDataReader)', "'76199698-9eea-4c19-bc75-cec21354c6b6')", 'GUID literal'],
  ['a Graph permission restated', GRAPH, 'var permissions = contract.graph.permissions', "var permissions = ['User.Read.All']", 'restates User.Read.All'],
  ['an unneeded Graph permission by GUID', GRAPH, 'var permissions = contract.graph.permissions', "var permissions = concat(contract.graph.permissions, ['741f803b-c850-494e-b5df-cde7c675a1ca'])", 'GUID literal'],
  ['a queue policy value overridden', SERVICE_BUS, '  requiresSession: false\n', '  requiresSession: false\n  maxDeliveryCount: 10\n', 'overrides QUEUE_POLICY.maxDeliveryCount'],
  ['queue policy not from the contract', SERVICE_BUS, 'union(contract.queueProperties, {', 'union({ maxDeliveryCount: 5 }, {', 'queueProperties must be union'],
  ['a queue without the policy', SERVICE_BUS, /(resource mfaEnabledQueue[^]*?properties: )queueProperties/, '$1{}', 'mfaEnabledQueue does not use queueProperties'],
  // App settings.
  ['a required app setting removed', FUNCTION_APP, /^\s*PROTECTED_USERS: .*\n/m, '', 'PROTECTED_USERS (requiredInAzure) is not set'],
  ['an app setting the code does not read', FUNCTION_APP, "    DRY_RUN: dryRun ? 'true' : 'false'\n", "    DRY_RUN: dryRun ? 'true' : 'false'\n    GRAPH_TIMEOUT: '30'\n", 'GRAPH_TIMEOUT is not a setting the code reads'],
  ['a local-only connection string set in Azure', FUNCTION_APP, '    AUDIT_TABLE_NAME: auditTableName\n', "    AUDIT_TABLE_NAME: auditTableName\n    AUDIT_TABLE_CONNECTION_STRING: 'UseDevelopmentStorage=true'\n", 'AUDIT_TABLE_CONNECTION_STRING is local development only'],
  ['a key credential for Service Bus', FUNCTION_APP, "ServiceBusConnection__credential: 'managedidentity'", "ServiceBusConnection__credential: 'connectionstring'", "ServiceBusConnection__credential must be 'managedidentity'"],
  ['the identity client id dropped', FUNCTION_APP, 'AZURE_CLIENT_ID: identityClientId', "AZURE_CLIENT_ID: ''", "AZURE_CLIENT_ID must be the identity's client id"],
  // Roles.
  ['a role assignment removed', STORAGE, /resource opsAuditReader [^]*?\n\]\n/, '', 'opsAuditReader (storageTableDataReader on auditTable) is missing'],
  ['a Service Bus role on the namespace', SERVICE_BUS, /(resource functionReceiveEmployeeLeaving[^]*?scope: )employeeLeavingQueue/, '$1namespace', 'functionReceiveEmployeeLeaving must be scoped to employeeLeavingQueue'],
  ['the HR publisher on the wrong queue', SERVICE_BUS, /(resource hrSendEmployeeLeaving[^]*?scope: )employeeLeavingQueue/, '$1mfaEnabledQueue', 'hrSendEmployeeLeaving must be scoped to employeeLeavingQueue'],
  ['a broader role (Data Owner)', SERVICE_BUS, 'contract.roles.serviceBusDataReceiver)', "'090c5cfd-751d-490a-894a-3ce6f1109419')", 'must assign contract.roles.serviceBusDataReceiver'],
  ['an extra role assignment', STORAGE, 'output name string = storage.name', "resource extra 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n  name: guid(storage.id, functionPrincipalId)\n}\noutput name string = storage.name", 'unexpected role assignment extra'],
  ['a name that is not guid(scope, principal, role)', MONITORING, 'name: guid(applicationInsights.id, functionPrincipalId, monitoringMetricsPublisher)', 'name: guid(functionPrincipalId, monitoringMetricsPublisher)', 'functionMetricsPublisher name must be guid'],
  ['principalType not set', MONITORING, "    principalType: 'ServicePrincipal'\n", '', 'functionMetricsPublisher: principalType is not set'],
  // De-duplication (issue 11, item 4) and the ops option (item 9).
  ['deployer kept when it is the ops group', MAIN, ' && deployerId != opsGroupId', '', 'the deployer is not dropped'],
  ['ids compared case-sensitively', MAIN, 'var opsGroupId = toLower(opsGroupPrincipalId)', 'var opsGroupId = opsGroupPrincipalId', 'ops group id is not lower-cased'],
  ['HR publisher assigned twice when also ops', SERVICE_BUS, ' && !hrPublisherIsOpsSender', '', 'HR sender assignment is not skipped'],
  ['ops receive regardless of opsQueueAccess', SERVICE_BUS, /(resource opsReceiveMfaEnabled[^]*?)for ops in opsReceivers:/, '$1for ops in opsPrincipals:', 'opsReceiveMfaEnabled must loop over opsReceivers'],
  // Defaults (items 1, 7) and azd parameters.
  ['the privileged Graph grant back in main.bicep', MAIN, "module workbook 'modules/workbook.bicep'", "module graphPermissions 'graph/grant-graph-permissions.bicep' = {\n}\nmodule workbook 'modules/workbook.bicep'", 'must not grant Graph permissions'],
  ['ops receiving live events by default', MAIN, "param opsQueueAccess string = 'sendOnly'", "param opsQueueAccess string = 'receiveAndSend'", "opsQueueAccess must default to 'sendOnly'"],
  ['the locked-policy switch on by default', MAIN, 'param auditLogPolicyLocked bool = false', 'param auditLogPolicyLocked bool = true', 'auditLogPolicyLocked must default to false'],
  ['PROTECTED_USERS defaulting to empty', MAIN, 'param protectedUsers string', "param protectedUsers string = ''", 'protectedUsers must be required'],
  ['DRY_RUN off on the first deploy', MAIN, 'param dryRun bool = true', 'param dryRun bool = false', 'dryRun must default to true'],
  ['azd default disagreeing with Bicep', PARAMETERS, '${LOG_RETENTION_DAYS=90}', '${LOG_RETENTION_DAYS=30}', 'default of logRetentionDays differs'],
  ['a required parameter not passed by azd', PARAMETERS, '"environmentName": { "value": "${AZURE_ENV_NAME}" },', '', 'does not set required parameter environmentName'],
  // Keys.
  ['Service Bus local auth on', SERVICE_BUS, 'disableLocalAuth: true', 'disableLocalAuth: false', 'must set disableLocalAuth: true'],
  ['storage shared keys on', STORAGE, /allowSharedKeyAccess: false(?=[^]*resource auditLogStorage )/, 'allowSharedKeyAccess: true', 'must set allowSharedKeyAccess: false on storage'],
  ['audit log storage shared keys on', STORAGE, /(resource auditLogStorage [^]*?)allowSharedKeyAccess: false/, '$1allowSharedKeyAccess: true', 'must set allowSharedKeyAccess: false on auditLogStorage'],
  ['listKeys()', STORAGE, 'output name string = storage.name', 'output key string = storage.listKeys().keys[0].value\noutput name string = storage.name', 'list*() call returns keys'],
  ['an instrumentation key', FUNCTION_APP, 'APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString', "APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=0'", 'a key'],
  // Alerts (item 6).
  ['dead letters summed instead of the point-in-time maximum', ALERTS, /(resource deadLetterAlerts[^]*?timeAggregation: )'Maximum'/, "$1'Total'", 'DeadletteredMessages (Maximum) > 0'],
  ['a queue without a dead-letter alert', MAIN, /(queueNames: \[\n\s*queueNames\.employeeLeaving\n)\s*queueNames\.mfaEnabled\n/, '$1', 'dead-letter queue of both queues'],
  ['"no events" back on IncomingMessages', ALERTS, "'| where DeliveryCount == 1'", "'| where DeliveryCount == 1 // IncomingMessages'", 'must not use IncomingMessages'],
  ['"no events" counting the app\'s own retries', ALERTS, /\n\s*'\| where not\(.*/, '', 'exclude each app MessageId prefix'],
  ['"no events" counting redeliveries', ALERTS, "  '| where DeliveryCount == 1'\n", '', 'count first deliveries only'],
  ['"no events" firing on rows instead of their absence', ALERTS, "operator: 'LessThan'\n          threshold: 1", "operator: 'GreaterThan'\n          threshold: 0", 'fire on zero rows'],
  ['"no events" on whatever the window', ALERTS, "windowSize: 'PT${noEventsAlertHours}H'", "windowSize: 'PT1H'", 'window must be noEventsAlertHours'],
  ['an alert without the action group', ALERTS, /(resource functionFailuresAlert[^]*?)actionGroupId: actionGroup\.id/, '$1actionGroupId: \'\'', 'functionFailuresAlert has no action group'],
  ['no alert on a delayed departure', ALERTS, /\nresource departureDelayedAlert [^]*?\n\}\n/, '\n', 'no log search alert runs departureDelayedQuery (logs.departureDelayed)'],
  ['the delayed alert on another log line', ALERTS, "('../contract.json').logs.departureDelayed", "('../contract.json').logs.guardrailTripped", 'does not read contract.logs.departureDelayed'],
  ['the delayed query on any message', ALERTS, '| where Message startswith "${departureDelayedMessage}"', '| where Message has "Delayed"', 'matches Message startswith departureDelayedMessage'],
  ['the delayed alert firing when no departure is delayed', ALERTS, /(resource departureDelayedAlert[^]*?operator: )'GreaterThan'/, "$1'LessThan'", 'departureDelayedAlert must fire on any row'],
  ['a log alert validated on a workspace without AppTraces', ALERTS, /(resource departureDelayedAlert[^]*?)skipQueryValidation: true\n/, '$1', 'departureDelayedAlert must set skipQueryValidation: true'],
  ['the delayed alert without the action group', ALERTS, /(resource departureDelayedAlert[^]*?)actionGroups: \[\s*actionGroup\.id\s*\]/, '$1actionGroups: []', 'departureDelayedAlert has no action group'],
  // Platform.
  ['not Node 22', FUNCTION_APP, "version: '22'", "version: '20'", 'node 22'],
  ['not Flex Consumption', FUNCTION_APP, "name: 'FC1'", "name: 'Y1'", 'Flex Consumption'],
  ['the password permission unconditional', GRAPH, '= if (enablePasswordReset) {', '= {', 'depend on enablePasswordReset'],
  ['the workbook not deployed', MAIN, /\nmodule workbook [^]*?\n\}\n/, '\n', 'must deploy the workbook module'],
  ['a workbook query with an unclosed string', WORKBOOK, 'Message contains "outcome: \\\'"\'', 'Message contains "outcome: \\\'\'', 'a KQL string literal is not closed'],
  ['the workbook on another scope', WORKBOOK, 'sourceId: workspaceId', "sourceId: ''", 'workbook.bicep must declare a Microsoft.Insights/workbooks'],
  ['the Graph extension missing from bicepconfig.json', 'infra/bicepconfig.json', '"microsoftGraphV1"', '"graph"', 'bicepconfig.json must declare microsoftGraphV1'],
];

describe('drift is reported', () => {
  test.each(DRIFTS)('%s', (_what, path, from, to, expected) => {
    const result = findings(inject(files, path, from, to));
    if (!result.some((f) => f.includes(expected))) {
      throw new Error(`expected a finding with "${expected}", got:\n${result.join('\n')}`);
    }
  });
});
