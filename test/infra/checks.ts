/**
 * Checks infra/ against the code's contract (shared/config.ts, shared/queuePolicy.ts,
 * shared/graph/permissions.ts) and the least-privilege role list in expectations.ts. Every problem
 * becomes a Finding; an empty list means infra/ matches the code.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

import {
  Deployment,
  isObject,
  isSym,
  parseBicep,
  resourceAccess,
  sameValue,
  show,
  stripComments,
  symParts,
  type Expr,
  type ResourceInstance,
  type SourceFiles,
  type Value,
} from './bicep';
import {
  expectedRoles,
  FORBIDDEN_ROLES,
  ROLE_NAMES,
  type ExpectedRole,
  type PrincipalKind,
  type ScopeKind,
} from './expectations';

export interface Finding {
  code: string;
  message: string;
}

export interface Contract {
  settings: readonly {
    name: string;
    description: string;
    default?: string;
    requiredInAzure: boolean;
  }[];
  queuePolicy: Readonly<Record<string, string | number | boolean>>;
  requiredGraphPermissions: (passwordResetsEnabled: boolean) => string[];
}

export const MAIN = 'infra/main.bicep';
const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';

/** Reads azure.yaml and every file under infra/ (paths relative to the repository root). */
export function loadInfraFiles(root: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else files[relative(root, path).split('\\').join('/')] = readFileSync(path, 'utf8');
    }
  };
  walk(join(root, 'infra'));
  files['azure.yaml'] = readFileSync(join(root, 'azure.yaml'), 'utf8');
  return files;
}

/** Stand-in object ids for the optional principals, so each can be told apart in role assignments. */
export const PRINCIPALS = {
  hrPublisher: '11111111-1111-4111-8111-111111111111',
  ops: '22222222-2222-4222-8222-222222222222',
  deployer: '33333333-3333-4333-8333-333333333333',
} as const;

const PRINCIPAL_TYPES: Record<Exclude<PrincipalKind, 'function'>, string> = {
  hrPublisher: 'ServicePrincipal',
  ops: 'Group',
  deployer: 'User',
};

interface Scenario {
  label: string;
  params: Record<string, Value>;
  /** Which optional principals must hold their roles in this scenario. */
  principals: PrincipalKind[];
  passwordReset: boolean;
  graphByBicep: boolean;
}

/** The deployments the checks evaluate: defaults (as `azd up` from a clone), everything on, script path. */
export const SCENARIOS: Scenario[] = [
  {
    label: 'defaults',
    params: { principalId: PRINCIPALS.deployer },
    principals: ['function'],
    passwordReset: false,
    graphByBicep: true,
  },
  {
    label: 'all optional principals, password resets, alerts',
    params: {
      principalId: PRINCIPALS.deployer,
      grantDeployerOpsAccess: true,
      hrPublisherPrincipalId: PRINCIPALS.hrPublisher,
      opsGroupPrincipalId: PRINCIPALS.ops,
      enablePasswordReset: true,
      dryRun: false,
      protectedUsers: 'breakglass@contoso.com',
      alertEmail: 'ops@contoso.com',
      noEventsAlertHours: 6,
    },
    principals: ['function', 'hrPublisher', 'ops', 'deployer'],
    passwordReset: true,
    graphByBicep: true,
  },
  {
    label: 'Graph permissions granted by the script',
    params: {
      principalId: PRINCIPALS.deployer,
      grantGraphPermissions: false,
      enablePasswordReset: true,
    },
    principals: ['function'],
    passwordReset: true,
    graphByBicep: false,
  },
];

class Report {
  readonly findings: Finding[] = [];

  add(code: string, message: string): void {
    if (!this.findings.some((f) => f.code === code && f.message === message))
      this.findings.push({ code, message });
  }

  guard(label: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.add('evaluation', `${label}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers over evaluated resources

function ofType(resources: ResourceInstance[], type: string, existing = false): ResourceInstance[] {
  return resources.filter(
    (r) => r.type.toLowerCase() === type.toLowerCase() && r.existing === existing,
  );
}

function prop(v: Value | undefined, ...path: string[]): Value | undefined {
  let cur = v;
  for (const key of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

/** The last segment of a resource name (child resources may be named 'parent/child'). */
function leafName(instance: ResourceInstance): Value | undefined {
  const name = instance.name;
  return typeof name === 'string' ? name.split('/').pop() : name;
}

function isIdentityProp(v: Value | undefined, property: 'principalId' | 'clientId'): boolean {
  const access = resourceAccess(v);
  return (
    access !== undefined &&
    access.instance.type === 'Microsoft.ManagedIdentity/userAssignedIdentities' &&
    access.path.length === 2 &&
    access.path[0] === 'properties' &&
    access.path[1] === property
  );
}

function isResourceId(v: Value | undefined, type: string): boolean {
  const access = resourceAccess(v);
  return (
    access !== undefined &&
    access.instance.type === type &&
    access.path.length === 1 &&
    access.path[0] === 'id'
  );
}

function derivesFrom(v: Value | undefined, type: string, pathText?: string): boolean {
  return symParts(v).some((s) => {
    const access = resourceAccess(s);
    if (access === undefined || access.instance.type !== type) return false;
    return pathText === undefined || show(s).includes(pathText);
  });
}

function functionSites(resources: ResourceInstance[]): ResourceInstance[] {
  return ofType(resources, 'Microsoft.Web/sites').filter((s) => {
    const kind = s.body.kind;
    return typeof kind === 'string' && kind.includes('functionapp');
  });
}

/** App settings of the function app: a `config/appsettings` child and/or `siteConfig.appSettings`. */
function appSettingsOf(
  resources: ResourceInstance[],
  site: ResourceInstance,
): Record<string, Value> {
  const settings: Record<string, Value> = {};
  for (const cfg of ofType(resources, 'Microsoft.Web/sites/config')) {
    const parent = resourceAccess(cfg.body.parent);
    if (leafName(cfg) === 'appsettings' && parent?.instance === site) {
      const properties = cfg.body.properties;
      if (isObject(properties)) Object.assign(settings, properties);
    }
  }
  const list = prop(site.body, 'properties', 'siteConfig', 'appSettings');
  if (Array.isArray(list)) {
    for (const item of list) {
      const name = prop(item, 'name');
      if (typeof name === 'string') settings[name] = prop(item, 'value') ?? null;
    }
  }
  return settings;
}

// ---------------------------------------------------------------------------------------------
// Checks

function settingDefault(contract: Contract, name: string): string | undefined {
  return contract.settings.find((s) => s.name === name)?.default;
}

function queueNamesOf(contract: Contract): { employeeLeaving: string; mfaEnabled: string } {
  return {
    employeeLeaving:
      settingDefault(contract, 'EMPLOYEE_LEAVING_QUEUE') ?? 'EMPLOYEE_LEAVING_QUEUE has no default',
    mfaEnabled: settingDefault(contract, 'MFA_ENABLED_QUEUE') ?? 'MFA_ENABLED_QUEUE has no default',
  };
}

/** Settings the Functions platform itself reads (not part of shared/config.ts). */
const PLATFORM_SETTINGS = new Set([
  'AzureWebJobsStorage__accountName',
  'AzureWebJobsStorage__blobServiceUri',
  'AzureWebJobsStorage__queueServiceUri',
  'AzureWebJobsStorage__tableServiceUri',
  'AzureWebJobsStorage__credential',
  'AzureWebJobsStorage__clientId',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
]);

/** Policy knobs whose value is the operator's choice (a parameter), not the code's default. */
const POLICY_SETTINGS = new Set(['PROTECTED_USERS', 'DRY_RUN']);

function checkAppSettings(
  report: Report,
  contract: Contract,
  scenario: Scenario,
  dep: Deployment,
): void {
  const resources = dep.resources();
  const sites = functionSites(resources);
  if (sites.length !== 1) {
    report.add('flex', `expected exactly one function app, found ${sites.length}`);
    return;
  }
  const site = sites[0] as ResourceInstance;
  const settings = appSettingsOf(resources, site);
  const at = `(${scenario.label})`;

  for (const spec of contract.settings) {
    const value = settings[spec.name];
    if (spec.requiredInAzure && value === undefined) {
      report.add(
        'setting-missing',
        `app setting ${spec.name} is required by shared/config.ts but infra does not set it`,
      );
      continue;
    }
    if (!spec.requiredInAzure && value !== undefined) {
      if ('localOnly' in spec && spec.localOnly)
        report.add(
          'setting-forbidden',
          `app setting ${spec.name} is for local development only and must not be set in Azure`,
        );
      else if (spec.name === 'GRAPH_CREDENTIAL' && value !== 'managedidentity') {
        report.add(
          'setting-value',
          `GRAPH_CREDENTIAL must be managedidentity in Azure, infra sets ${show(value)}`,
        );
      }
    }
    if (value === undefined) continue;
    if (
      spec.default !== undefined &&
      !POLICY_SETTINGS.has(spec.name) &&
      scenario.label === 'defaults'
    ) {
      if (value !== spec.default) {
        report.add(
          'setting-value',
          `app setting ${spec.name} is ${show(value)} but the code's default is ${JSON.stringify(spec.default)} ${at}`,
        );
      }
    }
  }

  for (const [name, value] of Object.entries(settings)) {
    if (!contract.settings.some((s) => s.name === name) && !PLATFORM_SETTINGS.has(name)) {
      report.add(
        'setting-unknown',
        `app setting ${name} is neither read by the code (shared/config.ts) nor a platform setting`,
      );
    }
    if (/(^|_)CONNECTION_STRING$|^AzureWebJobsStorage$|^ServiceBusConnection$/i.test(name)) {
      const appInsights =
        name === 'APPLICATIONINSIGHTS_CONNECTION_STRING' &&
        resourceAccess(value)?.instance.type === 'Microsoft.Insights/components' &&
        show(value).endsWith('.properties.ConnectionString');
      if (!appInsights)
        report.add('secret', `app setting ${name} carries a connection string: ${show(value)}`);
    }
  }

  // Identity-based connections.
  for (const [name, value] of Object.entries(settings)) {
    if (name.endsWith('__credential') && value !== 'managedidentity') {
      report.add('setting-value', `${name} must be "managedidentity", infra sets ${show(value)}`);
    }
    if (
      (name.endsWith('__clientId') || name === 'AZURE_CLIENT_ID') &&
      !isIdentityProp(value, 'clientId')
    ) {
      report.add(
        'setting-value',
        `${name} must be the client id of the user-assigned identity, infra sets ${show(value)}`,
      );
    }
  }
  const fqns = settings['ServiceBusConnection__fullyQualifiedNamespace'];
  if (fqns !== undefined && !derivesFrom(fqns, 'Microsoft.ServiceBus/namespaces')) {
    report.add(
      'setting-value',
      `ServiceBusConnection__fullyQualifiedNamespace must come from the Service Bus namespace, infra sets ${show(fqns)}`,
    );
  }
  const auditEndpoint = settings['AUDIT_TABLE_ENDPOINT'];
  if (
    auditEndpoint !== undefined &&
    !derivesFrom(auditEndpoint, 'Microsoft.Storage/storageAccounts', 'primaryEndpoints.table')
  ) {
    report.add(
      'setting-value',
      `AUDIT_TABLE_ENDPOINT must be the storage account's table endpoint, infra sets ${show(auditEndpoint)}`,
    );
  }
  const auditTableName = settings['AUDIT_TABLE_NAME'];
  const tables = ofType(resources, 'Microsoft.Storage/storageAccounts/tableServices/tables').map(
    leafName,
  );
  if (auditTableName !== undefined && !tables.some((t) => sameValue(t, auditTableName))) {
    report.add(
      'setting-value',
      `AUDIT_TABLE_NAME is ${show(auditTableName)} but infra creates no such table (tables: ${tables.map(show).join(', ')})`,
    );
  }
  for (const name of ['EMPLOYEE_LEAVING_QUEUE', 'MFA_ENABLED_QUEUE']) {
    const value = settings[name];
    const queues = ofType(resources, 'Microsoft.ServiceBus/namespaces/queues').map(leafName);
    if (value !== undefined && !queues.some((q) => sameValue(q, value))) {
      report.add(
        'setting-value',
        `${name} is ${show(value)} but infra creates no such queue ${at}`,
      );
    }
  }
  const dryRun = settings['DRY_RUN'];
  const expectedDryRun = scenario.params.dryRun === false ? 'false' : 'true';
  if (dryRun !== undefined && dryRun !== expectedDryRun) {
    report.add(
      'setting-value',
      `DRY_RUN should be "${expectedDryRun}" ${at} (first deploy is a dry run), infra sets ${show(dryRun)}`,
    );
  }
  const protectedUsers = settings['PROTECTED_USERS'];
  if (
    protectedUsers !== undefined &&
    typeof scenario.params.protectedUsers === 'string' &&
    protectedUsers !== scenario.params.protectedUsers
  ) {
    report.add(
      'setting-value',
      `PROTECTED_USERS does not follow the protectedUsers parameter ${at}: ${show(protectedUsers)}`,
    );
  }
  const aiAuth = settings['APPLICATIONINSIGHTS_AUTHENTICATION_STRING'];
  const aiAuthOk =
    isSym(aiAuth) &&
    aiAuth.d.t === 'interp' &&
    aiAuth.d.parts[0] === 'ClientId=' &&
    isIdentityProp(aiAuth.d.parts[1], 'clientId') &&
    aiAuth.d.parts[2] === ';Authorization=AAD' &&
    aiAuth.d.parts.length === 3;
  if (!aiAuthOk) {
    report.add(
      'setting-value',
      `APPLICATIONINSIGHTS_AUTHENTICATION_STRING must be ClientId=<identity client id>;Authorization=AAD, infra sets ${show(aiAuth)}`,
    );
  }
}

function checkQueues(report: Report, contract: Contract, dep: Deployment): void {
  const resources = dep.resources();
  const expected = Object.values(queueNamesOf(contract));
  const queues = ofType(resources, 'Microsoft.ServiceBus/namespaces/queues');
  const names = queues.map(leafName);
  for (const name of expected) {
    if (!names.some((n) => n === name)) {
      report.add(
        'queue-missing',
        `queue ${name} (default in shared/config.ts) is not created; infra creates ${names.map(show).join(', ')}`,
      );
    }
  }
  for (const queue of queues) {
    const name = leafName(queue);
    if (!expected.includes(name as string))
      report.add('queue-unexpected', `queue ${show(name)} is not one the code reads`);
    const properties = queue.body.properties;
    for (const [key, want] of Object.entries(contract.queuePolicy)) {
      if (key.endsWith('Ms')) continue; // code-side conversions of the ISO durations
      const got = prop(properties, key);
      if (got !== want) {
        report.add(
          'queue-property',
          `queue ${show(name)}: ${key} is ${show(got)}, QUEUE_POLICY says ${JSON.stringify(want)}`,
        );
      }
    }
    if (prop(properties, 'requiresSession') === true) {
      report.add(
        'queue-property',
        `queue ${show(name)} requires sessions; the triggers are not session-enabled`,
      );
    }
  }
  for (const ns of ofType(resources, 'Microsoft.ServiceBus/namespaces')) {
    if (prop(ns.body, 'properties', 'disableLocalAuth') !== true) {
      report.add(
        'local-auth',
        `Service Bus namespace ${show(ns.name)} must set disableLocalAuth: true`,
      );
    }
    const sku = prop(ns.body, 'sku', 'name');
    if (sku !== 'Standard' && sku !== 'Premium') {
      report.add(
        'queue-property',
        `Service Bus namespace sku is ${show(sku)}: scheduled messages and duplicate detection need Standard or Premium`,
      );
    }
  }
  for (const r of resources) {
    if (
      /^Microsoft\.ServiceBus\/namespaces(\/queues|\/topics)?\/authorizationRules$/i.test(r.type)
    ) {
      report.add('secret', `${r.type} ${show(r.name)} creates shared access keys`);
    }
  }
}

interface ActualRole {
  instance: ResourceInstance;
  principal: PrincipalKind | undefined;
  principalValue: Value | undefined;
  role: string | undefined;
  scope: { kind: ScopeKind | 'other'; name?: Value; type?: string };
}

function roleGuid(v: Value | undefined): string | undefined {
  const text = typeof v === 'string' ? v : isSym(v) ? show(v) : undefined;
  const access = resourceAccess(v);
  if (access && access.instance.type === 'Microsoft.Authorization/roleDefinitions')
    return show(access.instance.name).replace(/"/g, '');
  const m =
    text === undefined
      ? null
      : /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"?\)?$/i.exec(text);
  return m?.[1]?.toLowerCase();
}

function classifyScope(v: Value | undefined): ActualRole['scope'] {
  if (v === undefined)
    return { kind: 'other', type: 'the deployment scope (resource group or subscription)' };
  const access = resourceAccess(v);
  if (access === undefined || access.path.length > 0) return { kind: 'other', type: show(v) };
  const { instance } = access;
  const kinds: Record<string, ScopeKind> = {
    'Microsoft.ServiceBus/namespaces/queues': 'queue',
    'Microsoft.ServiceBus/namespaces': 'namespace',
    'Microsoft.Storage/storageAccounts': 'storageAccount',
    'Microsoft.Storage/storageAccounts/tableServices/tables': 'table',
    'Microsoft.Insights/components': 'appInsights',
  };
  const kind = kinds[instance.type];
  const name = leafName(instance);
  return kind === undefined
    ? { kind: 'other', type: instance.type, ...(name === undefined ? {} : { name }) }
    : { kind, ...(name === undefined ? {} : { name }) };
}

function classifyPrincipal(v: Value | undefined): PrincipalKind | undefined {
  if (isIdentityProp(v, 'principalId')) return 'function';
  for (const [kind, id] of Object.entries(PRINCIPALS)) if (v === id) return kind as PrincipalKind;
  return undefined;
}

function describeRole(role: string | undefined): string {
  return role === undefined ? 'an unknown role' : `${ROLE_NAMES[role] ?? 'role'} (${role})`;
}

function describeScope(scope: ActualRole['scope'] | ExpectedRole['scopes'][number]): string {
  const name =
    scope.name === undefined
      ? ''
      : ` ${typeof scope.name === 'string' ? scope.name : show(scope.name)}`;
  return `${scope.kind === 'other' && 'type' in scope ? String(scope.type) : scope.kind}${name}`;
}

function checkRoles(report: Report, contract: Contract, scenario: Scenario, dep: Deployment): void {
  const resources = dep.resources();
  const at = `(${scenario.label})`;
  const assignments: ActualRole[] = ofType(
    resources,
    'Microsoft.Authorization/roleAssignments',
  ).map((instance) => {
    const properties = instance.body.properties;
    const principalValue = prop(properties, 'principalId');
    return {
      instance,
      principal: classifyPrincipal(principalValue),
      principalValue,
      role: roleGuid(prop(properties, 'roleDefinitionId')),
      scope: classifyScope(instance.body.scope),
    };
  });

  for (const a of assignments) {
    const where = `${a.instance.label}`;
    if (a.instance.undecidedCondition !== undefined) {
      report.add(
        'role-condition',
        `${where}: condition cannot be decided before deployment (${a.instance.undecidedCondition})`,
      );
    }
    if (a.principal === undefined) {
      report.add(
        'role-principal',
        `${where}: principal ${show(a.principalValue)} is not the function identity or an optional principal parameter ${at}`,
      );
      continue;
    }
    const properties = a.instance.body.properties;
    const principalType = prop(properties, 'principalType');
    const wantType = a.principal === 'function' ? 'ServicePrincipal' : PRINCIPAL_TYPES[a.principal];
    if (principalType === undefined)
      report.add('role-principal-type', `${where}: principalType is not set`);
    else if (principalType !== wantType) {
      report.add(
        'role-principal-type',
        `${where}: principalType is ${show(principalType)}, expected ${wantType}`,
      );
    }
    const name = a.instance.name;
    const scopeId = a.instance.body.scope;
    const nameOk =
      isSym(name) &&
      name.d.t === 'call' &&
      name.d.name === 'guid' &&
      name.d.args.length === 3 &&
      (scopeId === undefined
        ? true
        : isSym(name.d.args[0]) &&
          resourceAccess(name.d.args[0])?.instance === resourceAccess(scopeId)?.instance &&
          show(name.d.args[0]).endsWith('.id')) &&
      sameValue(name.d.args[1], a.principalValue) &&
      sameValue(name.d.args[2], prop(properties, 'roleDefinitionId'));
    if (!nameOk)
      report.add(
        'role-name',
        `${where}: name must be guid(scope.id, principalId, roleDefinitionId), is ${show(name)}`,
      );

    if (a.role !== undefined && a.role in FORBIDDEN_ROLES) {
      report.add(
        'role-forbidden',
        `${where}: ${describeRole(a.role)} is broader than anything the code does`,
      );
    }
    if (a.scope.kind === 'namespace' || a.scope.kind === 'other') {
      report.add(
        'role-scope',
        `${where}: ${describeRole(a.role)} is scoped to ${describeScope(a.scope)}; data roles belong on the queue, table or account that is used`,
      );
    }
  }

  const queues = queueNamesOf(contract);
  const auditTable = settingDefault(contract, 'AUDIT_TABLE_NAME') ?? 'OffboardingAudit';
  // The deploying user, when given ops access, gets exactly the ops role set.
  const expected = expectedRoles(queues, auditTable)
    .flatMap((e): ExpectedRole[] =>
      e.principal === 'ops' ? [e, { ...e, principal: 'deployer' }] : [e],
    )
    .filter((e) => scenario.principals.includes(e.principal));
  const matches = (e: ExpectedRole, a: ActualRole) =>
    a.principal === e.principal &&
    a.role === e.role &&
    e.scopes.some(
      (s) => s.kind === a.scope.kind && (s.name === undefined || s.name === a.scope.name),
    );

  for (const e of expected) {
    if (!assignments.some((a) => matches(e, a))) {
      report.add(
        'role-missing',
        `${e.principal} needs ${describeRole(e.role)} on ${e.scopes.map(describeScope).join(' or ')}: ${e.why} ${at}`,
      );
    }
  }
  for (const a of assignments) {
    if (a.principal === undefined || expected.some((e) => matches(e, a))) continue;
    const reason = scenario.principals.includes(a.principal)
      ? 'no operation of the code needs it'
      : `${a.principal} must get no role in this scenario`;
    report.add(
      'role-unexpected',
      `${a.instance.label}: ${a.principal} gets ${describeRole(a.role)} on ${describeScope(a.scope)}: ${reason} ${at}`,
    );
  }
}

/** The permission a `filter(graph.appRoles, r => r.value == X)[0].id` expression selects. */
function permissionOf(appRoleId: Value | undefined, graphSp: ResourceInstance): string | undefined {
  if (!isSym(appRoleId) || appRoleId.d.t !== 'access') return undefined;
  const { base, path } = appRoleId.d;
  if (path.length !== 2 || path[0] !== 0 || path[1] !== 'id') return undefined;
  if (base.d.t !== 'call' || base.d.name !== 'filter') return undefined;
  const [roles, fn] = base.d.args;
  const rolesAccess = resourceAccess(roles);
  if (
    rolesAccess?.instance !== graphSp ||
    rolesAccess.path.length !== 1 ||
    rolesAccess.path[0] !== 'appRoles'
  )
    return undefined;
  if (!isSym(fn) || fn.d.t !== 'lambda') return undefined;
  const { expr, env } = fn.d;
  const body = expr.body;
  const param = expr.params[0];
  if (body.k !== 'bin' || body.op !== '==' || param === undefined) return undefined;
  const isValue = (e: Expr) =>
    e.k === 'member' && e.name === 'value' && e.obj.k === 'id' && e.obj.name === param;
  const other = isValue(body.left) ? body.right : isValue(body.right) ? body.left : undefined;
  if (other === undefined) return undefined;
  const value = env.file.eval(other, env);
  return typeof value === 'string' ? value : undefined;
}

function checkGraph(report: Report, contract: Contract, scenario: Scenario, dep: Deployment): void {
  const resources = dep.resources();
  const at = `(${scenario.label})`;
  const sps = ofType(resources, 'Microsoft.Graph/servicePrincipals', true).filter(
    (sp) => sp.body.appId === GRAPH_APP_ID,
  );
  const granted: string[] = [];
  for (const grant of ofType(resources, 'Microsoft.Graph/appRoleAssignedTo')) {
    const where = grant.label;
    if (grant.undecidedCondition !== undefined) {
      report.add(
        'graph-condition',
        `${where}: condition cannot be decided before deployment (${grant.undecidedCondition})`,
      );
    }
    const resource = resourceAccess(grant.body.resourceId);
    const sp = sps.find((s) => s === resource?.instance);
    if (sp === undefined || resource?.path.length !== 1 || resource.path[0] !== 'id') {
      report.add(
        'graph-form',
        `${where}: resourceId must be the id of the Microsoft Graph service principal (appId ${GRAPH_APP_ID}), is ${show(grant.body.resourceId)}`,
      );
      continue;
    }
    if (!isIdentityProp(grant.body.principalId, 'principalId')) {
      report.add(
        'graph-form',
        `${where}: principalId must be the function identity's principal id, is ${show(grant.body.principalId)}`,
      );
    }
    const permission = permissionOf(grant.body.appRoleId, sp);
    if (permission === undefined) {
      report.add(
        'graph-form',
        `${where}: appRoleId must be looked up by value, filter(<graph>.appRoles, r => r.value == '<permission>')[0].id; is ${show(grant.body.appRoleId)}`,
      );
      continue;
    }
    granted.push(permission);
  }
  const required = scenario.graphByBicep
    ? contract.requiredGraphPermissions(scenario.passwordReset)
    : [];
  const always = contract.requiredGraphPermissions(false);
  for (const p of required) {
    if (!granted.includes(p))
      report.add(
        'graph-missing',
        `Graph permission ${p} is called by the code but not granted ${at}`,
      );
  }
  for (const p of granted) {
    if (required.includes(p)) continue;
    if (!scenario.graphByBicep) {
      report.add(
        'graph-unneeded',
        `Graph permission ${p} is granted by Bicep although grantGraphPermissions is false ${at}`,
      );
    } else if (contract.requiredGraphPermissions(true).includes(p) && !always.includes(p)) {
      report.add(
        'graph-unconditional',
        `Graph permission ${p} is granted although enablePasswordReset is false ${at}`,
      );
    } else {
      report.add(
        'graph-unneeded',
        `Graph permission ${p} is granted but the code never needs it ${at}`,
      );
    }
  }
  const counts = new Map<string, number>();
  for (const p of granted) counts.set(p, (counts.get(p) ?? 0) + 1);
  for (const [p, n] of counts)
    if (n > 1) report.add('graph-form', `Graph permission ${p} is granted ${n} times ${at}`);
}

function checkPlatform(
  report: Report,
  scenario: Scenario,
  dep: Deployment,
  files: SourceFiles,
): void {
  const resources = dep.resources();
  const at = `(${scenario.label})`;
  const plans = ofType(resources, 'Microsoft.Web/serverfarms');
  if (
    !plans.some(
      (p) =>
        prop(p.body, 'sku', 'name') === 'FC1' && prop(p.body, 'sku', 'tier') === 'FlexConsumption',
    )
  ) {
    report.add('flex', 'no Flex Consumption plan (sku FC1, tier FlexConsumption)');
  }
  for (const p of plans) {
    if (prop(p.body, 'properties', 'reserved') !== true)
      report.add('flex', 'the plan must be Linux (properties.reserved: true)');
  }
  const identities = ofType(resources, 'Microsoft.ManagedIdentity/userAssignedIdentities');
  if (identities.length !== 1)
    report.add('identity', `expected one user-assigned identity, found ${identities.length}`);
  for (const site of functionSites(resources)) {
    const kind = site.body.kind;
    if (typeof kind !== 'string' || !kind.includes('linux'))
      report.add('flex', `function app kind must be functionapp,linux, is ${show(kind)}`);
    const runtime = prop(site.body, 'properties', 'functionAppConfig', 'runtime');
    if (prop(runtime, 'name') !== 'node' || prop(runtime, 'version') !== '22') {
      report.add('flex', `function app runtime must be node 22, is ${show(runtime)}`);
    }
    const storage = prop(site.body, 'properties', 'functionAppConfig', 'deployment', 'storage');
    const auth = prop(storage, 'authentication');
    if (
      prop(storage, 'type') !== 'blobContainer' ||
      prop(auth, 'type') !== 'UserAssignedIdentity' ||
      !isResourceId(
        prop(auth, 'userAssignedIdentityResourceId'),
        'Microsoft.ManagedIdentity/userAssignedIdentities',
      )
    ) {
      report.add(
        'flex',
        `deployment storage must be a blob container reached with the user-assigned identity, is ${show(storage)}`,
      );
    }
    const containers = ofType(
      resources,
      'Microsoft.Storage/storageAccounts/blobServices/containers',
    ).map(leafName);
    const target = prop(storage, 'value');
    if (
      !derivesFrom(target, 'Microsoft.Storage/storageAccounts', 'primaryEndpoints.blob') ||
      !containers.some((c) => typeof c === 'string' && show(target).endsWith(c))
    ) {
      report.add(
        'flex',
        `deployment storage must be <blob endpoint><container> of a container infra creates, is ${show(target)}`,
      );
    }
    const identity = prop(site.body, 'identity');
    const type = prop(identity, 'type');
    const assigned = prop(identity, 'userAssignedIdentities');
    if (
      typeof type !== 'string' ||
      !type.includes('UserAssigned') ||
      !isObject(assigned) ||
      !Object.keys(assigned).some(
        (k) => k.includes('Microsoft.ManagedIdentity/userAssignedIdentities') && k.endsWith('.id'),
      )
    ) {
      report.add(
        'identity',
        `function app must run as the user-assigned identity, identity is ${show(identity)}`,
      );
    }
    const service = prop(site.body, 'tags', 'azd-service-name');
    const yamlService = /^services:\s*\n\s+([A-Za-z0-9_-]+):/m.exec(files['azure.yaml'] ?? '')?.[1];
    if (service === undefined || service !== yamlService) {
      report.add(
        'azd',
        `function app tag azd-service-name is ${show(service)}, azure.yaml service is ${String(yamlService)}`,
      );
    }
    if (prop(site.body, 'properties', 'httpsOnly') !== true)
      report.add('flex', 'function app must set httpsOnly: true');
  }
  for (const st of ofType(resources, 'Microsoft.Storage/storageAccounts')) {
    if (prop(st.body, 'properties', 'allowSharedKeyAccess') !== false) {
      report.add(
        'local-auth',
        `storage account ${show(st.name)} must set allowSharedKeyAccess: false`,
      );
    }
  }
  for (const ai of ofType(resources, 'Microsoft.Insights/components')) {
    if (prop(ai.body, 'properties', 'DisableLocalAuth') !== true) {
      report.add(
        'local-auth',
        'Application Insights must set DisableLocalAuth: true (Entra authentication only)',
      );
    }
    if (
      !isResourceId(
        prop(ai.body, 'properties', 'WorkspaceResourceId'),
        'Microsoft.OperationalInsights/workspaces',
      )
    ) {
      report.add('monitoring', 'Application Insights must be workspace-based');
    }
  }
  const retention = dep.main.param('logRetentionDays');
  for (const ws of ofType(resources, 'Microsoft.OperationalInsights/workspaces')) {
    const got = prop(ws.body, 'properties', 'retentionInDays');
    if (got !== retention)
      report.add(
        'monitoring',
        `Log Analytics retention is ${show(got)}, not the logRetentionDays parameter (${show(retention)}) ${at}`,
      );
  }

  // Alerts.
  const alerts = ofType(resources, 'Microsoft.Insights/metricAlerts');
  const criteriaOf = (a: ResourceInstance): Value[] => {
    const all = prop(a.body, 'properties', 'criteria', 'allOf');
    return Array.isArray(all) ? all : [];
  };
  const hasAlert = (metric: string, test: (c: Value) => boolean) =>
    alerts.some((a) => criteriaOf(a).some((c) => prop(c, 'metricName') === metric && test(c)));
  const entity = (c: Value, queue: string) => {
    const dims = prop(c, 'dimensions');
    return (
      Array.isArray(dims) &&
      dims.some(
        (d) =>
          prop(d, 'name') === 'EntityName' &&
          Array.isArray(prop(d, 'values')) &&
          (prop(d, 'values') as Value[]).includes(queue),
      )
    );
  };
  const queues = ofType(resources, 'Microsoft.ServiceBus/namespaces/queues').map(leafName);
  for (const q of queues) {
    if (typeof q !== 'string') continue;
    if (
      !hasAlert(
        'DeadletteredMessages',
        (c) => entity(c, q) && prop(c, 'operator') === 'GreaterThan' && prop(c, 'threshold') === 0,
      )
    ) {
      report.add('alerts', `no alert on DeadletteredMessages > 0 for queue ${q}`);
    }
  }
  if (!hasAlert('requests/failed', (c) => prop(c, 'operator') === 'GreaterThan'))
    report.add('alerts', 'no alert on failed function invocations');
  const noEvents = hasAlert('IncomingMessages', (c) => prop(c, 'operator') === 'LessThan');
  const hours = scenario.params.noEventsAlertHours;
  if (typeof hours === 'number' && hours > 0 && !noEvents)
    report.add('alerts', `no "no events" alert although noEventsAlertHours is ${hours}`);
  if (!(typeof hours === 'number' && hours > 0) && noEvents)
    report.add('alerts', 'a "no events" alert exists although noEventsAlertHours is 0');
  const email = scenario.params.alertEmail;
  if (typeof email === 'string') {
    const groups = ofType(resources, 'Microsoft.Insights/actionGroups');
    const receivers = groups.flatMap((g) => {
      const r = prop(g.body, 'properties', 'emailReceivers');
      return Array.isArray(r) ? r : [];
    });
    if (!receivers.some((r) => prop(r, 'emailAddress') === email))
      report.add('alerts', 'the alertEmail parameter does not reach the action group');
  }
  for (const a of alerts) {
    const actions = prop(a.body, 'properties', 'actions');
    if (!Array.isArray(actions) || actions.length === 0)
      report.add('alerts', `${a.label} has no action group`);
  }
}

/** Text scans for keys and connection strings anywhere in infra/. */
const SECRET_PATTERNS: [RegExp, string][] = [
  [
    /\blist(Keys|ConnectionStrings|AccountSas|ServiceSas|Secrets|Credentials?)\s*\(/i,
    'a list*() call returns keys or secrets',
  ],
  [/AccountKey\s*=/i, 'a storage account key'],
  [/SharedAccessKey/i, 'a Service Bus shared access key'],
  [/SharedAccessSignature|[?&]sig=/i, 'a shared access signature'],
  [
    /\b(primary|secondary)(Key|ConnectionString|MasterKey)\b/i,
    'a key or connection string property',
  ],
  [/InstrumentationKey\s*=/i, 'an instrumentation key'],
  [/DefaultEndpointsProtocol\s*=/i, 'a storage connection string'],
  [/Endpoint\s*=\s*sb:\/\//i, 'a Service Bus connection string'],
];

function checkSecrets(report: Report, files: SourceFiles): void {
  for (const [path, source] of Object.entries(files)) {
    if (!path.startsWith('infra/')) continue;
    const text = path.endsWith('.bicep')
      ? stripComments(source)
      : path.endsWith('.sh') || path.endsWith('.ps1')
        ? source
            .split('\n')
            .filter((l) => !/^\s*#/.test(l))
            .join('\n')
        : source;
    text.split('\n').forEach((line, i) => {
      for (const [pattern, what] of SECRET_PATTERNS) {
        if (pattern.test(line)) report.add('secret', `${path}:${i + 1}: ${what}: ${line.trim()}`);
      }
      if (
        /connection_?string/i.test(line) &&
        !/^\s*APPLICATIONINSIGHTS_CONNECTION_STRING:\s*[A-Za-z_][A-Za-z0-9_]*\.properties\.ConnectionString\s*$/.test(
          line,
        )
      ) {
        report.add('secret', `${path}:${i + 1}: a connection string: ${line.trim()}`);
      }
    });
  }
}

/** azd layout: azure.yaml, main.bicep conventions, main.parameters.json, bicepconfig.json. */
function checkAzdLayout(report: Report, files: SourceFiles): void {
  const yaml = files['azure.yaml'] ?? '';
  if (!/^\s+host:\s*function\s*$/m.test(yaml))
    report.add('azd', 'azure.yaml: the service must have host: function');
  if (!/^\s+language:\s*(ts|typescript)\s*$/m.test(yaml))
    report.add('azd', 'azure.yaml: the service must have language: ts');

  const main = parseBicep(MAIN, files[MAIN] ?? '');
  if (main.targetScope !== 'subscription')
    report.add(
      'azd',
      `main.bicep targetScope must be subscription, is ${String(main.targetScope)}`,
    );
  const token = main.vars.find((v) => v.name === 'resourceToken');
  if (
    token?.source.replace(/\s+/g, '') !==
    'toLower(uniqueString(subscription().id,environmentName,location))'
  ) {
    report.add(
      'azd',
      `resourceToken must be toLower(uniqueString(subscription().id, environmentName, location)), is ${String(token?.source)}`,
    );
  }
  const dep = new Deployment(files, MAIN, {});
  const rg = ofType(dep.resources(), 'Microsoft.Resources/resourceGroups');
  if (
    !rg.some((r) =>
      sameValue(prop(r.body, 'tags', 'azd-env-name'), dep.main.param('environmentName')),
    )
  ) {
    report.add('azd', 'the resource group must carry the tag azd-env-name: environmentName');
  }

  const paramsText = files['infra/main.parameters.json'];
  if (paramsText === undefined) {
    report.add('azd', 'infra/main.parameters.json is missing');
    return;
  }
  const parameters =
    (JSON.parse(paramsText) as { parameters?: Record<string, { value?: unknown }> }).parameters ??
    {};
  const required: Record<string, string> = {
    environmentName: 'AZURE_ENV_NAME',
    location: 'AZURE_LOCATION',
    principalId: 'AZURE_PRINCIPAL_ID',
  };
  for (const [name, variable] of Object.entries(required)) {
    if (parameters[name]?.value !== `\${${variable}}`)
      report.add('azd', `main.parameters.json: ${name} must be \${${variable}}`);
  }
  for (const p of main.params) {
    if (p.defaultValue === undefined && !(p.name in parameters))
      report.add('azd', `main.parameters.json does not set required parameter ${p.name}`);
  }
  for (const [name, entry] of Object.entries(parameters)) {
    const decl = main.params.find((p) => p.name === name);
    if (decl === undefined) {
      report.add('azd', `main.parameters.json sets ${name}, which main.bicep does not declare`);
      continue;
    }
    const m =
      typeof entry.value === 'string' ? /^\$\{([A-Z0-9_]+)(=(.*))?\}$/.exec(entry.value) : null;
    if (m === null) {
      report.add(
        'azd',
        `main.parameters.json: ${name} should be an azd variable \${NAME} or \${NAME=default}`,
      );
      continue;
    }
    if (m[2] !== undefined && decl.defaultValue !== undefined) {
      const fallback = m[3] ?? '';
      const bicepDefault = dep.main.param(name);
      const typed =
        decl.type === 'bool'
          ? fallback === 'true'
          : decl.type === 'int'
            ? Number(fallback)
            : fallback;
      if (!sameValue(typed, bicepDefault)) {
        report.add(
          'azd',
          `main.parameters.json default for ${name} (${fallback}) differs from main.bicep (${show(bicepDefault)})`,
        );
      }
    }
  }

  const config = files['infra/bicepconfig.json'];
  const extension =
    config === undefined
      ? undefined
      : (JSON.parse(config) as { extensions?: Record<string, string> }).extensions
          ?.microsoftGraphV1;
  if (
    extension === undefined ||
    !extension.startsWith('br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:')
  ) {
    report.add(
      'graph-form',
      'infra/bicepconfig.json must declare the extension microsoftGraphV1 (br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:<version>)',
    );
  }
  for (const [path, source] of Object.entries(files)) {
    if (
      path.endsWith('.bicep') &&
      source.includes('Microsoft.Graph/') &&
      !parseBicep(path, source).extensions.includes('microsoftGraphV1')
    ) {
      report.add(
        'graph-form',
        `${path} declares Microsoft Graph resources without \`extension microsoftGraphV1\``,
      );
    }
  }
}

export function checkInfra(files: SourceFiles, contract: Contract): Finding[] {
  const report = new Report();
  report.guard('secrets', () => checkSecrets(report, files));
  report.guard('azd layout', () => checkAzdLayout(report, files));
  for (const scenario of SCENARIOS) {
    let dep: Deployment;
    try {
      dep = new Deployment(files, MAIN, scenario.params);
      dep.resources().forEach((r) => void r.body);
    } catch (error) {
      report.add(
        'evaluation',
        `${scenario.label}: ${error instanceof Error ? error.message : String(error)}`,
      );
      continue;
    }
    report.guard(`${scenario.label}: app settings`, () =>
      checkAppSettings(report, contract, scenario, dep),
    );
    report.guard(`${scenario.label}: queues`, () => checkQueues(report, contract, dep));
    report.guard(`${scenario.label}: roles`, () => checkRoles(report, contract, scenario, dep));
    report.guard(`${scenario.label}: graph`, () => checkGraph(report, contract, scenario, dep));
    report.guard(`${scenario.label}: platform`, () => checkPlatform(report, scenario, dep, files));
  }
  return report.findings;
}
