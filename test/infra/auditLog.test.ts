/**
 * The immutable audit log in infra/ (issue 10, item 6): the container the app appends to is the one
 * it is configured with, it has a time-based immutability policy with protected append writes (left
 * unlocked, with how to lock it), the function identity's only role on it creates and appends, and
 * operators only read. Azurite does not enforce immutability policies, so this is where the policy
 * is checked. Each kind of drift, injected into a copy of the text, is reported.
 */
import { join } from 'node:path';
import { buildInfraContract } from '../../dev/infra-contract';
import {
  declarations,
  inject,
  loadInfraFiles,
  paramDefault,
  properties,
  stripComments,
  type Declaration,
  type InfraFiles,
} from './bicepText';
import { FUNCTION_APP, MAIN, STORAGE } from './checks';

const ROOT = join(__dirname, '..', '..');
const files = loadInfraFiles(ROOT);
const contract = buildInfraContract();

const CONTAINER = 'Microsoft.Storage/storageAccounts/blobServices/containers';
const POLICY = 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies';
const ROLE_DEFINITION = 'Microsoft.Authorization/roleDefinitions';
const ROLE = 'Microsoft.Authorization/roleAssignments';
const APPEND = 'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action';
const READ = 'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read';

const inner = (d: Declaration) =>
  properties(/properties: (\{[^]*?\n\s*\})/.exec(d.body)?.[1] ?? '{}');

/** The data actions of a role definition, with `var` names resolved from the file. */
function dataActions(definition: Declaration, text: string): string[] {
  const list = /dataActions: \[([^\]]*)\]/.exec(definition.body)?.[1] ?? '';
  return list
    .split('\n')
    .map((item) => item.trim())
    .filter(Boolean)
    .map((item) => {
      const variable = new RegExp(`^var ${item} = '([^']+)'$`, 'm').exec(text)?.[1];
      return variable ?? item.replace(/^'|'$/g, '');
    });
}

/** The role definition a role assignment's roleDefinitionId names, if it is one of the file's. */
function definitionOf(
  assignment: Declaration,
  definitions: Declaration[],
): Declaration | undefined {
  const id = inner(assignment).roleDefinitionId ?? '';
  return definitions.find((d) =>
    id.includes(`'Microsoft.Authorization/roleDefinitions', ${d.symbol}.name)`),
  );
}

function checkAuditLog(f: InfraFiles): string[] {
  const findings: string[] = [];
  const text = stripComments(f[STORAGE] ?? '');
  const all = declarations(f).filter((d) => d.file === STORAGE);
  const container = all.find(
    (d) => d.type === CONTAINER && properties(d.body).name === 'auditLogContainerName',
  );
  if (container === undefined) return ['no container named auditLogContainerName in storage.bicep'];
  if (inner(container).publicAccess !== "'None'")
    findings.push('the audit log container must have publicAccess None');

  // WORM with protected append writes, a sensible retention, unlocked in the template.
  const policies = all.filter((d) => d.type === POLICY);
  const policy = policies.find((p) => properties(p.body).parent === container.symbol);
  if (policy === undefined) findings.push('the audit log container has no immutability policy');
  else {
    const props = inner(policy);
    if (properties(policy.body).name !== "'default'")
      findings.push("the immutability policy must be named 'default'");
    if (props.allowProtectedAppendWrites !== 'true')
      findings.push('the immutability policy must allow protected append writes');
    if ('allowProtectedAppendWritesAll' in props)
      findings.push(
        'allowProtectedAppendWritesAll would let block blobs be appended to: append blobs only',
      );
    if (props.immutabilityPeriodSinceCreationInDays !== 'auditLogRetentionDays')
      findings.push('the retention must be the auditLogRetentionDays parameter');
  }
  const days = Number(paramDefault(text, 'auditLogRetentionDays'));
  if (!Number.isInteger(days) || days < 90 || days > 3650)
    findings.push('auditLogRetentionDays must default to between 90 days and 10 years');
  if (/immutabilityPolicies\/lock|\block\b\s*:/i.test(text))
    findings.push("the template must not lock the policy: locking is an owner's deliberate step");
  if (!/immutability-policy lock/.test(f[STORAGE] ?? ''))
    findings.push('storage.bicep must say (in a comment) how an owner locks the policy');

  // Roles on the container: the function appends, operators read, nothing else.
  const definitions = all.filter((d) => d.type === ROLE_DEFINITION);
  const onContainer = all.filter(
    (d) => d.type === ROLE && properties(d.body).scope === container.symbol,
  );
  const functionRoles = onContainer.filter((r) =>
    /principalId: functionPrincipalId\b/.test(r.body),
  );
  if (functionRoles.length !== 1)
    findings.push(
      `the function needs exactly one role on the audit log container, has ${functionRoles.length}`,
    );
  for (const role of functionRoles) {
    const definition = definitionOf(role, definitions);
    const actions = definition === undefined ? [] : dataActions(definition, text);
    if (definition === undefined || actions.join() !== APPEND)
      findings.push(
        `the function's role on the audit log must have only the data action ${APPEND}`,
      );
    else if (!/actions: \[\]/.test(definition.body))
      findings.push('the appender role must have no control-plane actions');
  }
  const opsRoles = onContainer.filter((r) => /principalId: ops\.id\b/.test(r.body));
  if (opsRoles.length !== 1)
    findings.push('operators need a reader role on the audit log container');
  for (const role of opsRoles) {
    const definition = definitionOf(role, definitions);
    if (definition === undefined || dataActions(definition, text).join() !== READ)
      findings.push(`operators' role on the audit log must have only the data action ${READ}`);
  }
  for (const role of onContainer)
    if (!functionRoles.includes(role) && !opsRoles.includes(role))
      findings.push(`unexpected role assignment ${role.symbol} on the audit log container`);
  for (const definition of definitions)
    if (
      /blobs\/(write|delete)|deleteBlobVersion|permanentDelete|immutableStorage/.test(
        definition.body,
      )
    )
      findings.push(`role ${definition.symbol} may rewrite or delete blobs`);

  // The app appends to the container infra creates: one name, from the AUDIT_LOG_CONTAINER default.
  const main = stripComments(f[MAIN] ?? '');
  if (
    !main.includes('var auditLogContainerName = contract.appSettings.defaults.AUDIT_LOG_CONTAINER')
  )
    findings.push('main.bicep must take the container name from the AUDIT_LOG_CONTAINER default');
  for (const module of ['storage', 'functionApp']) {
    const d = declarations(f).find((x) => x.file === MAIN && x.symbol === module);
    if (d === undefined || !/\bauditLogContainerName: auditLogContainerName\b/.test(d.body))
      findings.push(`main.bicep must pass auditLogContainerName to module ${module}`);
  }
  const app = stripComments(f[FUNCTION_APP] ?? '');
  if (!/^\s*AUDIT_LOG_CONTAINER: auditLogContainerName$/m.test(app))
    findings.push('the app setting AUDIT_LOG_CONTAINER must be auditLogContainerName');
  if (!/^\s*AUDIT_BLOB_ENDPOINT: auditLogBlobEndpoint$/m.test(app))
    findings.push(
      "the app setting AUDIT_BLOB_ENDPOINT must be the audit log account's blob endpoint",
    );
  const functionApp = declarations(f).find((x) => x.file === MAIN && x.symbol === 'functionApp');
  if (
    !/\bauditLogBlobEndpoint: storage\.outputs\.auditLogBlobEndpoint\b/.test(
      functionApp?.body ?? '',
    )
  )
    findings.push("main.bicep must pass the audit log account's blob endpoint to the function app");
  if (
    !/^output auditLogBlobEndpoint string = auditLogStorage\.properties\.primaryEndpoints\.blob$/m.test(
      text,
    )
  )
    findings.push("storage.bicep must output the audit log account's blob endpoint");

  // Its own account: there the function identity holds nothing but the appender role (on the
  // app's account the Functions host needs Storage Blob Data Owner, which can rewrite any blob).
  const blobService = all.find((d) => d.symbol === properties(container.body).parent);
  const account = blobService === undefined ? undefined : properties(blobService.body).parent;
  if (account === undefined || account === 'storage')
    findings.push("the audit log container must be in an account of its own, not the app's");
  else {
    const onAccount = all.filter(
      (d) =>
        d.type === ROLE &&
        [account, blobService?.symbol].includes(properties(d.body).scope) &&
        /principalId: functionPrincipalId\b/.test(d.body),
    );
    for (const role of onAccount)
      findings.push(`the function must hold no role on the audit log account (${role.symbol})`);
    const accountDecl = all.find((d) => d.symbol === account);
    if (!/allowSharedKeyAccess: false/.test(accountDecl?.body ?? ''))
      findings.push('the audit log account must disable shared keys');
  }
  return findings;
}

describe('the immutable audit log in infra', () => {
  test('no finding', () => {
    expect(checkAuditLog(files)).toEqual([]);
  });

  test('the settings it reads are ones the contract knows, with the default infra uses', () => {
    expect(contract.appSettings.requiredInAzure).toEqual(
      expect.arrayContaining(['AUDIT_BLOB_ENDPOINT', 'AUDIT_LOG_CONTAINER']),
    );
    expect(contract.appSettings.defaults.AUDIT_LOG_CONTAINER).toBe('audit-log');
  });

  /** [what drifted, file, from, to, a fragment of the expected finding] */
  // prettier-ignore
  const DRIFTS: [string, string, string | RegExp, string, string][] = [
    ['no immutability policy', STORAGE, /resource auditLogImmutability [^]*?\n\}\n/, '', 'has no immutability policy'],
    ['appends not allowed', STORAGE, 'allowProtectedAppendWrites: true', 'allowProtectedAppendWrites: false', 'allow protected append writes'],
    ['appends to block blobs too', STORAGE, 'allowProtectedAppendWrites: true', 'allowProtectedAppendWritesAll: true', 'append blobs only'],
    ['a retention written by hand', STORAGE, 'immutabilityPeriodSinceCreationInDays: auditLogRetentionDays', 'immutabilityPeriodSinceCreationInDays: 1', 'auditLogRetentionDays parameter'],
    ['a retention of a day', STORAGE, 'param auditLogRetentionDays int = 365', 'param auditLogRetentionDays int = 1', 'between 90 days and 10 years'],
    ['the how-to-lock comment removed', STORAGE, /\n\/\/ {3}az storage container immutability-policy lock[^\n]*/, '', 'how an owner locks'],
    ['Storage Blob Data Contributor-like appender', STORAGE, /(resource auditLogAppenderRole[^]*?dataActions: \[\n\s*)auditLogAppendAction/, "$1auditLogAppendAction\n          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'", 'may rewrite or delete'],
    ['the appender also reads', STORAGE, /(resource auditLogAppenderRole[^]*?dataActions: \[\n\s*)auditLogAppendAction/, '$1auditLogAppendAction\n          auditLogReadAction', 'only the data action'],
    ['the function given the reader role', STORAGE, /(resource functionAuditLogAppender[^]*?roleDefinitions', )auditLogAppenderRole/, '$1auditLogReaderRole', 'only the data action'],
    ['operators given the appender', STORAGE, /(resource opsAuditLogReader[^]*?roleDefinitions', )auditLogReaderRole/, '$1auditLogAppenderRole', "operators' role"],
    ['the appender on the account', STORAGE, /(resource functionAuditLogAppender[^]*?scope: )auditLogContainer/, '$1storage', 'exactly one role'],
    ['a container named by hand', STORAGE, /(resource auditLogContainer [^]*?name: )auditLogContainerName/, "$1'audit-log'", 'no container named'],
    ['the log back in the app\'s account', STORAGE, 'parent: auditLogBlobService\n  name: auditLogContainerName', 'parent: blobService\n  name: auditLogContainerName', 'an account of its own'],
    ['the host\'s owner role on the log account', STORAGE, /(resource functionBlobDataOwner[^]*?scope: )storage\n/, '$1auditLogStorage\n', 'no role on the audit log account'],
    ['shared keys on the log account', STORAGE, /(resource auditLogStorage [^]*?)allowSharedKeyAccess: false/, '$1allowSharedKeyAccess: true', 'disable shared keys'],
    ['the app pointed at the app\'s account', FUNCTION_APP, 'AUDIT_BLOB_ENDPOINT: auditLogBlobEndpoint', 'AUDIT_BLOB_ENDPOINT: storageBlobEndpoint', "audit log account's blob endpoint"],
    ['the app setting not the container', FUNCTION_APP, 'AUDIT_LOG_CONTAINER: auditLogContainerName', "AUDIT_LOG_CONTAINER: 'audit'", 'AUDIT_LOG_CONTAINER must be auditLogContainerName'],
  ];

  test.each(DRIFTS)('%s is reported', (_what, path, from, to, expected) => {
    const drifted = inject(files, path, from, to);
    expect(checkAuditLog(drifted).join('\n')).toContain(expected);
  });
});
