/**
 * Structural checks of infra/ against the contract the code generates (infra/contract.json). Each
 * returns findings (empty: fine). infra.test.ts runs them on the real files and on copies with drift
 * injected, so every kind of drift that matters is shown to be caught.
 */
import type { InfraContract } from '../../dev/infra-contract';
import {
  declarations,
  paramDefault,
  properties,
  stripComments,
  type Declaration,
  type InfraFiles,
} from './bicepText';

export const MAIN = 'infra/main.bicep';
export const FUNCTION_APP = 'infra/modules/functionapp.bicep';
export const SERVICE_BUS = 'infra/modules/servicebus.bicep';
export const STORAGE = 'infra/modules/storage.bicep';
export const MONITORING = 'infra/modules/monitoring.bicep';
export const GRAPH = 'infra/graph/grant-graph-permissions.bicep';
export const ALERTS = 'infra/modules/alerts.bicep';
export const WORKBOOK = 'infra/modules/workbook.bicep';
export const PARAMETERS = 'infra/main.parameters.json';

const code = (files: InfraFiles, path: string) => stripComments(files[path] ?? '');
const bicepFiles = (files: InfraFiles) => Object.keys(files).filter((p) => p.endsWith('.bicep'));

/** Values the code owns must come from contract.json, never be written again in the Bicep. */
export function checkNotRestated(files: InfraFiles, contract: InfraContract): string[] {
  const findings: string[] = [];
  const owned = [
    ...Object.values(contract.queues),
    contract.auditTableName,
    contract.graph.appId,
    ...contract.graph.permissions,
    contract.graph.passwordResetPermission,
    ...Object.values(contract.roles),
    ...contract.appMessageIdPrefixes,
  ];
  for (const path of bicepFiles(files)) {
    const text = code(files, path);
    const loader =
      path === MAIN ? "loadJsonContent('contract.json')" : "loadJsonContent('../contract.json')";
    if (/contract\./.test(text) && !text.includes(loader))
      findings.push(`${path} uses contract.* without ${loader}`);
    for (const value of owned) {
      if (text.includes(`'${value}'`) || text.includes(`"${value}"`))
        findings.push(`${path} restates ${value}: read it from contract.json`);
    }
    for (const guid of text.match(
      /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi,
    ) ?? [])
      findings.push(`${path} has a GUID literal ${guid}: role and app ids come from contract.json`);
  }
  const main = code(files, MAIN);
  for (const [line, what] of [
    ['var queueNames = contract.queues', 'queue names'],
    ['var auditTableName = contract.auditTableName', 'the audit table name'],
    ['contract.appSettings.defaults.GRAPH_ENDPOINT', 'the GRAPH_ENDPOINT default'],
  ]) {
    if (!main.includes(line as string))
      findings.push(`main.bicep does not take ${what} from contract.json`);
  }
  return findings;
}

const PLATFORM_SETTINGS = /^(AzureWebJobsStorage__\w+|APPLICATIONINSIGHTS_\w+)$/;

/** The app settings block against SETTINGS (via the contract). */
export function checkAppSettings(files: InfraFiles, contract: InfraContract): string[] {
  const config = declarations(files).find((d) => d.type === 'Microsoft.Web/sites/config');
  if (config === undefined) return ['no Microsoft.Web/sites/config (app settings) resource'];
  const settings = properties(/properties: (\{[^]*\})\s*\}$/.exec(config.body)?.[1] ?? '{}');
  const { requiredInAzure, optional, localOnly } = contract.appSettings;
  const known: string[] = [...requiredInAzure, ...optional];
  const findings: string[] = [];
  for (const name of requiredInAzure)
    if (!(name in settings)) findings.push(`app setting ${name} (requiredInAzure) is not set`);
  for (const name of Object.keys(settings)) {
    if ((localOnly as string[]).includes(name))
      findings.push(`app setting ${name} is local development only and must not be set in Azure`);
    else if (!known.includes(name) && !PLATFORM_SETTINGS.test(name))
      findings.push(`app setting ${name} is not a setting the code reads (shared/app/config.ts)`);
  }
  for (const name of ['ServiceBusConnection__credential', 'AzureWebJobsStorage__credential'])
    if (settings[name] !== "'managedidentity'") findings.push(`${name} must be 'managedidentity'`);
  for (const name of [
    'AZURE_CLIENT_ID',
    'ServiceBusConnection__clientId',
    'AzureWebJobsStorage__clientId',
  ])
    if (settings[name] !== 'identityClientId')
      findings.push(`${name} must be the identity's client id`);
  return findings;
}

/** Queues take QUEUE_POLICY from the contract; extra properties never override it. */
export function checkQueues(files: InfraFiles, contract: InfraContract): string[] {
  const text = code(files, SERVICE_BUS);
  const m = /var queueProperties = union\(contract\.queueProperties, (\{[^}]*\})\)/.exec(text);
  if (m === null)
    return ['servicebus.bicep: queueProperties must be union(contract.queueProperties, {...})'];
  const findings: string[] = [];
  for (const key of Object.keys(properties(m[1] as string)))
    if (key in contract.queueProperties)
      findings.push(`servicebus.bicep overrides QUEUE_POLICY.${key}`);
  const queues = declarations(files).filter(
    (d) => d.type === 'Microsoft.ServiceBus/namespaces/queues',
  );
  if (queues.length !== Object.keys(contract.queues).length)
    findings.push(`expected ${Object.keys(contract.queues).length} queues, found ${queues.length}`);
  for (const q of queues)
    if (properties(q.body).properties !== 'queueProperties')
      findings.push(`queue ${q.symbol} does not use queueProperties`);
  return findings;
}

/** [file, symbol, role key in contract.roles, scope symbol, principal expression] */
// prettier-ignore
export const EXPECTED_ROLES: [string, string, string, string, string][] = [
  [SERVICE_BUS, 'functionReceiveEmployeeLeaving', 'serviceBusDataReceiver', 'employeeLeavingQueue', 'functionPrincipalId'],
  [SERVICE_BUS, 'functionSendEmployeeLeaving', 'serviceBusDataSender', 'employeeLeavingQueue', 'functionPrincipalId'],
  [SERVICE_BUS, 'functionReceiveMfaEnabled', 'serviceBusDataReceiver', 'mfaEnabledQueue', 'functionPrincipalId'],
  [SERVICE_BUS, 'functionSendMfaEnabled', 'serviceBusDataSender', 'mfaEnabledQueue', 'functionPrincipalId'],
  [SERVICE_BUS, 'hrSendEmployeeLeaving', 'serviceBusDataSender', 'employeeLeavingQueue', 'hrPublisherPrincipalId'],
  [SERVICE_BUS, 'opsReceiveEmployeeLeaving', 'serviceBusDataReceiver', 'employeeLeavingQueue', 'ops.id'],
  [SERVICE_BUS, 'opsSendEmployeeLeaving', 'serviceBusDataSender', 'employeeLeavingQueue', 'ops.id'],
  [SERVICE_BUS, 'opsReceiveMfaEnabled', 'serviceBusDataReceiver', 'mfaEnabledQueue', 'ops.id'],
  [SERVICE_BUS, 'opsSendMfaEnabled', 'serviceBusDataSender', 'mfaEnabledQueue', 'ops.id'],
  [SERVICE_BUS, 'functionSendOutcomes', 'serviceBusDataSender', 'outcomeTopic', 'functionPrincipalId'],
  [STORAGE, 'functionBlobDataOwner', 'storageBlobDataOwner', 'storage', 'functionPrincipalId'],
  [STORAGE, 'functionTableDataContributor', 'storageTableDataContributor', 'storage', 'functionPrincipalId'],
  [STORAGE, 'opsAuditReader', 'storageTableDataReader', 'auditTable', 'ops.id'],
  [STORAGE, 'opsGuardrailWriter', 'storageTableDataContributor', 'guardrailTable', 'ops.id'],
  [MONITORING, 'functionMetricsPublisher', 'monitoringMetricsPublisher', 'applicationInsights', 'functionPrincipalId'],
];

/** Every role assignment: expected, scoped as intended, named guid(scope, principal, role), typed. */
export function checkRoles(files: InfraFiles): string[] {
  const findings: string[] = [];
  const assignments = declarations(files).filter(
    (d) => d.type === 'Microsoft.Authorization/roleAssignments',
  );
  const roleVar = (d: Declaration, key: string) =>
    new RegExp(
      `^var (\\w+) = subscriptionResourceId\\('Microsoft\\.Authorization/roleDefinitions', (?:contract|loadJsonContent\\('\\.\\./contract\\.json'\\))\\.roles\\.${key}\\)$`,
      'm',
    ).exec(code(files, d.file))?.[1];
  for (const [file, symbol, role, scope, principal] of EXPECTED_ROLES) {
    const d = assignments.find((a) => a.file === file && a.symbol === symbol);
    if (d === undefined) {
      findings.push(`role assignment ${symbol} (${role} on ${scope}) is missing from ${file}`);
      continue;
    }
    const p = properties(d.body);
    const inner = properties(/properties: (\{[^]*?\n\s*\})/.exec(d.body)?.[1] ?? '{}');
    const variable = roleVar(d, role);
    if (variable === undefined || inner.roleDefinitionId !== variable)
      findings.push(
        `${symbol} must assign contract.roles.${role}, assigns ${inner.roleDefinitionId}`,
      );
    if (p.scope !== scope)
      findings.push(
        `${symbol} must be scoped to ${scope}, is ${p.scope ?? 'the deployment scope'}`,
      );
    if (p.name !== `guid(${scope}.id, ${principal}, ${variable})`)
      findings.push(`${symbol} name must be guid(${scope}.id, ${principal}, <role>), is ${p.name}`);
    if (inner.principalId !== principal)
      findings.push(`${symbol} must go to ${principal}, goes to ${inner.principalId}`);
    if (inner.principalType === undefined) findings.push(`${symbol}: principalType is not set`);
  }
  // The audit log's custom-role assignments (storage.bicep) are checked by auditLog.test.ts.
  const auditLogRoles = new Set(['functionAuditLogAppender', 'opsAuditLogReader']);
  for (const d of assignments)
    if (
      !EXPECTED_ROLES.some(([f, s]) => f === d.file && s === d.symbol) &&
      !(d.file === STORAGE && auditLogRoles.has(d.symbol))
    )
      findings.push(`unexpected role assignment ${d.symbol} in ${d.file}`);
  return findings;
}

/** Rules as [pattern, file, message when the pattern is not found]. */
type Rule = [RegExp, string, string];
const unmet = (files: InfraFiles, rules: Rule[]) =>
  rules
    .filter(([pattern, path]) => !pattern.test(code(files, path)))
    .map(([, , message]) => message);

// prettier-ignore
const DEDUPLICATION: Rule[] = [
  [/var opsGroupId = toLower\(opsGroupPrincipalId\)/, MAIN, 'the ops group id is not lower-cased'],
  [/var deployerId = toLower\(principalId\)/, MAIN, 'the deployer id is not lower-cased'],
  [/grantDeployerOpsAccess && !empty\(deployerId\) && deployerId != opsGroupId \?/, MAIN, 'the deployer is not dropped when it is the ops group'],
  [/hrPublisherPrincipalId: toLower\(hrPublisherPrincipalId\)/, MAIN, 'the HR publisher id is not lower-cased'],
  [/var hrPublisherIsOpsSender = contains\(opsPrincipalIds, hrPublisherPrincipalId\) && opsQueueAccess != 'none'/, SERVICE_BUS, 'hrPublisherIsOpsSender is not derived from the ops senders'],
  [/resource hrSendEmployeeLeaving [^\n]*= if \(!empty\(hrPublisherPrincipalId\) && !hrPublisherIsOpsSender\)/, SERVICE_BUS, 'the HR sender assignment is not skipped when ops already sends'],
  [/var opsReceivers = opsQueueAccess == 'receiveAndSend' \? opsPrincipals : \[\]/, SERVICE_BUS, 'ops receive roles do not follow opsQueueAccess'],
  [/var opsSenders = opsQueueAccess == 'none' \? \[\] : opsPrincipals/, SERVICE_BUS, 'ops send roles do not follow opsQueueAccess'],
];

/** One object id given for two roles must not yield two assignments with the same guid() name. */
export function checkDeduplication(files: InfraFiles): string[] {
  const findings = unmet(files, DEDUPLICATION);
  for (const d of declarations(files)) {
    const list = d.symbol.startsWith('opsReceive')
      ? 'opsReceivers'
      : d.symbol.startsWith('opsSend')
        ? 'opsSenders'
        : undefined;
    if (list !== undefined && !d.header.includes(`for ops in ${list}:`))
      findings.push(`${d.symbol} must loop over ${list}`);
  }
  return findings;
}

/** Parameter defaults: the safe first deploy, and main.parameters.json agreeing with main.bicep. */
export function checkDefaults(files: InfraFiles): string[] {
  const main = code(files, MAIN);
  const findings: string[] = [];
  const expect: Record<string, string> = {
    dryRun: 'true',
    grantDeployerOpsAccess: 'false',
    graphEndpoint: "''",
    opsQueueAccess: "'sendOnly'",
    auditLogPolicyLocked: 'false',
    // The sign-in watch (and its AuditLog.Read.All) is opt-in.
    signInWatch: 'false',
  };
  for (const [name, value] of Object.entries(expect))
    if (paramDefault(main, name) !== value)
      findings.push(`param ${name} must default to ${value}, is ${paramDefault(main, name)}`);
  // shared/app/config.ts requires PROTECTED_USERS with no default: an empty value must stop the deploy.
  if (!/@minLength\(1\)\nparam protectedUsers string$/m.test(main))
    findings.push('param protectedUsers must be required and non-empty (no default)');
  // The privileged Graph grant is a step of its own, never part of what `azd provision` deploys.
  if (/graph-permissions|microsoftGraph|grant-graph/i.test(main))
    findings.push(
      'main.bicep must not grant Graph permissions: that is a separate, privileged step',
    );
  const parameters = (
    JSON.parse(files[PARAMETERS] ?? '{}') as { parameters: Record<string, { value: string }> }
  ).parameters;
  for (const [name, { value }] of Object.entries(parameters)) {
    const m = /^\$\{([A-Z0-9_]+)(?:=(.*))?\}$/.exec(value);
    const bicepDefault = paramDefault(main, name);
    if (m === null) findings.push(`main.parameters.json: ${name} is not an azd variable`);
    else if (!new RegExp(`^param ${name} `, 'm').test(main))
      findings.push(`main.parameters.json sets ${name}, which main.bicep does not declare`);
    else if (
      m[2] !== undefined &&
      bicepDefault !== undefined &&
      bicepDefault.replace(/^'(.*)'$/, '$1') !== m[2]
    )
      findings.push(
        `default of ${name} differs: main.parameters.json ${m[2]}, main.bicep ${bicepDefault}`,
      );
  }
  for (const m of main.matchAll(/^param (\w+) \w+$/gm))
    if (!((m[1] as string) in parameters))
      findings.push(`main.parameters.json does not set required parameter ${m[1]}`);
  return findings;
}

const SECRET_PATTERNS: [RegExp, string][] = [
  [
    /\blist(Keys|ConnectionStrings|AccountSas|ServiceSas|Secrets)\s*\(/i,
    'a list*() call returns keys',
  ],
  [/AccountKey\s*=|SharedAccessKey|SharedAccessSignature|InstrumentationKey\s*=/i, 'a key'],
  [/DefaultEndpointsProtocol\s*=|Endpoint\s*=\s*sb:\/\//i, 'a connection string'],
  [/\b(primary|secondary)(Key|ConnectionString)\b/i, 'a key property'],
  [/namespaces\/authorizationRules/i, 'a Service Bus shared access rule'],
];

/** No keys or connection strings; local (key) authentication off everywhere. */
export function checkNoKeys(files: InfraFiles): string[] {
  const findings: string[] = [];
  for (const path of bicepFiles(files))
    code(files, path)
      .split('\n')
      .forEach((line, i) => {
        for (const [pattern, what] of SECRET_PATTERNS)
          if (pattern.test(line)) findings.push(`${path}:${i + 1}: ${what}: ${line.trim()}`);
      });
  for (const [path, flag] of [
    [SERVICE_BUS, 'disableLocalAuth: true'],
    [MONITORING, 'DisableLocalAuth: true'],
  ])
    if (!code(files, path as string).includes(flag as string))
      findings.push(`${path} must set ${flag}`);
  // Every storage account (the app's and the audit log's) without shared keys.
  for (const account of declarations(files).filter(
    (d) => d.file === STORAGE && d.type === 'Microsoft.Storage/storageAccounts',
  ))
    if (!account.body.includes('allowSharedKeyAccess: false'))
      findings.push(`${STORAGE} must set allowSharedKeyAccess: false on ${account.symbol}`);
  return findings;
}

// prettier-ignore
const ALERT_RULES: Rule[] = [
  // DeadletteredMessages is a point-in-time count: Maximum over the window, per queue (EntityName).
  [/resource deadLetterAlerts [^\n]*= \[\s*for queueName in queueNames: \{[^]*metricName: 'DeadletteredMessages'[^]*values: \[\s*queueName\s*\][^]*operator: 'GreaterThan'\s*threshold: 0\s*timeAggregation: 'Maximum'/, ALERTS, 'dead-letter alerts must be DeadletteredMessages (Maximum) > 0 per queue (EntityName)'],
  [/queueNames: \[\s*queueNames\.employeeLeaving\s*queueNames\.mfaEnabled\s*\]/, MAIN, 'main.bicep must watch the dead-letter queue of both queues'],
  [/metricName: 'requests\/failed'\s*operator: 'GreaterThan'\s*threshold: 0/, ALERTS, 'no alert on failed invocations (requests/failed > 0)'],
  // IncomingMessages counts the app's own scheduled retries and leave dates, and an idle entity emits
  // no points: a "less than 1" metric alert cannot show a silent HR feed. A log search alert can.
  [/^(?![^]*IncomingMessages)/, ALERTS, '"no events" must not use IncomingMessages'],
  [/resource noEventsAlert 'Microsoft\.Insights\/scheduledQueryRules@[^']+' = if \(noEventsAlertHours > 0\)/, ALERTS, 'the "no events" alert must be a log search alert, off when noEventsAlertHours is 0'],
  [/timeAggregation: 'Count'\s*operator: 'LessThan'\s*threshold: 1/, ALERTS, 'the "no events" alert must fire on zero rows (Count < 1)'],
  [/windowSize: 'PT\$\{noEventsAlertHours\}H'/, ALERTS, 'the "no events" window must be noEventsAlertHours'],
  [/var appMessageIdPrefixes = loadJsonContent\('\.\.\/contract\.json'\)\.appMessageIdPrefixes/, ALERTS, 'the "no events" query must exclude contract.appMessageIdPrefixes'],
  [/map\(appMessageIdPrefixes, prefix => 'MessageId startswith "\$\{prefix\}"'\)/, ALERTS, 'the "no events" query must exclude each app MessageId prefix'],
  [/'\| where DeliveryCount == 1'/, ALERTS, 'the "no events" query must count first deliveries only'],
  [/OperationName == "\$\{noEventsFunctionName\}"/, ALERTS, 'the "no events" query must count the function of the queue only'],
  [/noEventsFunctionName: contract\.functions\.employeeLeaving/, MAIN, 'the "no events" function must come from the contract'],
];

/** Alert definitions against the metric semantics (docs/deploy.md, "Alerts"). */
export function checkAlerts(files: InfraFiles): string[] {
  const findings = unmet(files, ALERT_RULES);
  for (const d of declarations(files).filter((x) =>
    /metricAlerts|scheduledQueryRules/.test(x.type),
  ))
    if (!d.body.includes('actionGroup.id')) findings.push(`${d.symbol} has no action group`);
  // A new workspace has no AppTraces table until the first trace: a validated rule fails to create.
  for (const d of declarations(files).filter((x) => /scheduledQueryRules/.test(x.type)))
    if (!/^\s*skipQueryValidation: true$/m.test(d.body))
      findings.push(`${d.symbol} must set skipQueryValidation: true`);
  return findings;
}

/**
 * Each log line the contract names (contract.logs, the code's constants) has a log search alert:
 * the message read from the contract, matched at the start of AppTraces.Message, counted, fired on
 * any row.
 */
export function checkLogLineAlerts(files: InfraFiles, contract: InfraContract): string[] {
  const text = code(files, ALERTS);
  const rules = declarations(files).filter(
    (d) => d.file === ALERTS && d.type === 'Microsoft.Insights/scheduledQueryRules',
  );
  const findings: string[] = [];
  for (const key of Object.keys(contract.logs)) {
    const message = new RegExp(
      `^var (\\w+) = loadJsonContent\\('\\.\\./contract\\.json'\\)\\.logs\\.${key}$`,
      'm',
    ).exec(text)?.[1];
    if (message === undefined) {
      findings.push(`${ALERTS} does not read contract.logs.${key}`);
      continue;
    }
    const query = new RegExp(
      `^var (\\w+) = join\\(\\[\\s*'AppTraces'\\s*'\\| where AppRoleName =~ "\\$\\{functionAppName\\}"'\\s*'\\| where Message startswith "\\$\\{${message}\\}"'\\s*\\]`,
      'm',
    ).exec(text)?.[1];
    if (query === undefined) {
      findings.push(`no AppTraces query of the app matches Message startswith ${message}`);
      continue;
    }
    const rule = rules.find((r) => new RegExp(`^\\s*query: ${query}$`, 'm').test(r.body));
    if (rule === undefined) findings.push(`no log search alert runs ${query} (logs.${key})`);
    else if (!/timeAggregation: 'Count'\s*operator: 'GreaterThan'\s*threshold: 0/.test(rule.body))
      findings.push(`${rule.symbol} must fire on any row of ${query} (Count > 0)`);
  }
  return findings;
}

// prettier-ignore
const PLATFORM_RULES: Rule[] = [
  [/name: 'FC1'\s*tier: 'FlexConsumption'/, FUNCTION_APP, 'the plan must be Flex Consumption (FC1)'],
  [/runtime: \{\s*name: 'node'\s*version: '22'\s*\}/, FUNCTION_APP, 'the runtime must be node 22'],
  [/type: 'UserAssignedIdentity'\s*userAssignedIdentityResourceId: identityId/, FUNCTION_APP, 'deployment storage must use the user-assigned identity'],
  [/'azd-service-name': 'api'/, FUNCTION_APP, 'azd-service-name must be api'],
  [/alwaysReady: departureAlwaysReadyInstances == 0 \? \[\] : \[\s*\{\s*name: 'function:\$\{loadJsonContent\('\.\.\/contract\.json'\)\.functions\.employeeLeaving\}'/, FUNCTION_APP, 'always-ready instances must target the departures function named in the contract'],
  [/^services:\s*\n\s+api:\s*\n(\s+.*\n)*?\s+host: function/m, 'azure.yaml', 'azure.yaml must deploy the service api as a function'],
  [/^ {4}dist: dist\/deploy$/m, 'azure.yaml', 'azure.yaml must ship dist/deploy (npm run build writes it)'],
  [/^ {2}postprovision:\s*\n(\s+.*\n)*?\s+run: node infra\/scripts\/postprovision\.mjs/m, 'azure.yaml', 'azure.yaml must run the postprovision hook that names the Graph grant step'],
  [/targetScope = 'subscription'/, MAIN, 'main.bicep targetScope must be subscription'],
  [/var resourceToken = toLower\(uniqueString\(subscription\(\)\.id, environmentName, location\)\)/, MAIN, 'the azd resource token changed'],
  [/"microsoftGraphV1": "br:mcr\.microsoft\.com\/bicep\/extensions\/microsoftgraph\/v1\.0:/, 'infra/bicepconfig.json', 'bicepconfig.json must declare microsoftGraphV1'],
  [/^extension microsoftGraphV1$/m, GRAPH, 'grant-graph-permissions.bicep must use extension microsoftGraphV1'],
  [/for permission in permissions: \{\s*appRoleId: filter\(microsoftGraph\.appRoles, role => role\.value == permission\)\[0\]\.id/, GRAPH, 'Graph permissions must be looked up by value'],
  [/resource passwordResetGrant [^\n]*= if \(enablePasswordReset\)/, GRAPH, 'the password permission must depend on enablePasswordReset'],
];

/** Flex Consumption on Node 22, identity-based deployment storage, azd conventions, the Graph extension. */
export function checkPlatform(files: InfraFiles): string[] {
  return unmet(files, PLATFORM_RULES);
}

// prettier-ignore
const WORKBOOK_RULES: Rule[] = [
  [/^module workbook 'modules\/workbook\.bicep' = \{[^]*?workspaceId: monitoring\.outputs\.workspaceId\n[^]*?functionAppName: functionAppName\n/m, MAIN, 'main.bicep must deploy the workbook module on the workspace and the function app'],
  [/^resource workbook 'Microsoft\.Insights\/workbooks@[^']+' = \{[^]*?sourceId: workspaceId\s*serializedData: string\(content\)/m, WORKBOOK, 'workbook.bicep must declare a Microsoft.Insights/workbooks on the workspace'],
];

/** The `offboard report` workbook (docs/report.md) is deployed by azd up. */
export function checkWorkbook(files: InfraFiles): string[] {
  return unmet(files, WORKBOOK_RULES);
}

/**
 * Each KQL line of the alerts and the workbook (a Bicep string `'| ...'` on a line of its own)
 * closes every string literal it opens: an odd number of `"` is a query Azure rejects when it runs.
 * The compiler cannot see it (the KQL is only text to Bicep).
 */
export function checkQueryQuotes(files: InfraFiles): string[] {
  const findings: string[] = [];
  for (const path of [ALERTS, WORKBOOK])
    code(files, path)
      .split('\n')
      .forEach((line, i) => {
        const kql = /^\s*'(\|.*)'$/.exec(line)?.[1]?.replace(/\\'/g, "'");
        if (kql !== undefined && (kql.match(/"/g) ?? []).length % 2 !== 0)
          findings.push(`${path}:${i + 1}: a KQL string literal is not closed: ${kql}`);
      });
  return findings;
}

export function checkInfra(files: InfraFiles, contract: InfraContract): string[] {
  return [
    ...checkNotRestated(files, contract),
    ...checkAppSettings(files, contract),
    ...checkQueues(files, contract),
    ...checkRoles(files),
    ...checkDeduplication(files),
    ...checkDefaults(files),
    ...checkNoKeys(files),
    ...checkAlerts(files),
    ...checkLogLineAlerts(files, contract),
    ...checkPlatform(files),
    ...checkWorkbook(files),
    ...checkQueryQuotes(files),
  ];
}
