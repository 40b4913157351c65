/**
 * The guardrail alert reads the log line the function writes on a trip from the contract, so the
 * two cannot drift apart; the contract carries the code's constant.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GUARDRAIL_TRIPPED } from '../../shared/core/guardrail';
import { ALERTS } from './checks';

const ROOT = join(__dirname, '..', '..');
const alerts = readFileSync(join(ROOT, ALERTS), 'utf8');
const contract = JSON.parse(readFileSync(join(ROOT, 'infra/contract.json'), 'utf8')) as {
  logs?: { guardrailTripped?: string };
};

test('the contract carries the log line the function writes when the guardrail trips', () => {
  expect(contract.logs?.guardrailTripped).toBe(GUARDRAIL_TRIPPED);
});

test('a log alert fires on that line, from the contract, into the action group', () => {
  const rule =
    /resource guardrailAlert 'Microsoft\.Insights\/scheduledQueryRules@[^']+' = \{([\s\S]*?)\n\}/.exec(
      alerts,
    );
  expect(rule).not.toBeNull();
  const body = rule?.[1] ?? '';
  expect(alerts).toContain("loadJsonContent('../contract.json').logs.guardrailTripped");
  expect(alerts).toMatch(/Message startswith "\$\{guardrailTrippedMessage\}"/);
  expect(body).toContain('query: guardrailQuery');
  expect(body).toMatch(/operator: 'GreaterThan'\s+threshold: 0/);
  expect(body).toContain('actionGroup.id');
  expect(body).toMatch(/severity: 1/);
});

test('the guardrail table infra creates is the one the app and operators use', () => {
  const main = readFileSync(join(ROOT, 'infra/main.bicep'), 'utf8');
  const storage = readFileSync(join(ROOT, 'infra/modules/storage.bicep'), 'utf8');
  const app = readFileSync(join(ROOT, 'infra/modules/functionapp.bicep'), 'utf8');
  expect(main).toContain(
    'var guardrailTableName = contract.appSettings.defaults.GUARDRAIL_TABLE_NAME',
  );
  expect(main.match(/guardrailTableName: guardrailTableName/g)).toHaveLength(2);
  expect(storage).toMatch(
    /resource guardrailTable 'Microsoft\.Storage\/storageAccounts\/tableServices\/tables@[^']+' = \{\s*parent: tableService\s*name: guardrailTableName/,
  );
  expect(app).toMatch(/^\s*GUARDRAIL_TABLE_NAME: guardrailTableName$/m);
  // Operators write the guardrail table, and only read the audit table.
  expect(storage).toMatch(/resource opsGuardrailWriter [^]*?scope: guardrailTable/);
  expect(storage).toMatch(
    /resource opsAuditReader [^]*?scope: auditTable\s*properties: \{\s*roleDefinitionId: storageTableDataReader\b/,
  );
});
