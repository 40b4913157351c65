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
