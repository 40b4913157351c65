#!/usr/bin/env node
/**
 * azd postprovision hook (azure.yaml): says what is still to do after `azd provision` / `azd up`.
 * The Graph permissions are a privileged, deliberate second step that `azd provision` never takes
 * (docs/deploy.md), so until the azd environment says they were granted (GRAPH_PERMISSIONS_GRANTED)
 * it prints the command to run; likewise the audit log's lock (AUDIT_LOG_POLICY_LOCKED).
 * It only prints: it never fails the deployment.
 */
const env = process.env;
const granted = env.GRAPH_PERMISSIONS_GRANTED === 'true';
const locked = env.AUDIT_LOG_POLICY_LOCKED === 'true';
const principal = env.MANAGED_IDENTITY_PRINCIPAL_ID ?? '<MANAGED_IDENTITY_PRINCIPAL_ID>';
const passwordReset = env.ENABLE_PASSWORD_RESET === 'true';
const dryRun = (env.DRY_RUN ?? 'true') !== 'false';

const lines = [''];
if (!granted) {
  lines.push(
    'NEXT STEP: the function identity has no Microsoft Graph permissions yet: its Graph calls fail',
    'with 403 until an administrator grants them.',
  );
  lines.push(
    'A Privileged Role Administrator (or Global Administrator) runs, from this checkout:',
    '',
    `  az login --tenant ${env.AZURE_TENANT_ID ?? '<tenant id>'}`,
    `  infra/scripts/grant-graph-permissions.sh --principal-id ${principal}`,
    '  azd env set GRAPH_PERMISSIONS_GRANTED true',
    '',
  );
}
if (passwordReset) {
  lines.push(
    'ENABLE_PASSWORD_RESET is true: resets also need the User Administrator role, preferably on an',
    'administrative unit that holds the users to offboard:',
    '',
    `  infra/scripts/grant-graph-permissions.sh --principal-id ${principal} --password-reset --admin-unit <unit id>`,
    '',
  );
}
if (!locked) {
  lines.push(
    "The immutable audit log's policy is not locked yet: an owner locks it within 24 hours once the",
    'retention is right (docs/deploy.md, "Lock the audit log"), then: azd env set AUDIT_LOG_POLICY_LOCKED true',
    '',
  );
}
if (dryRun) {
  lines.push(
    'DRY_RUN is true: events are read and audited, nothing is written to Graph. See docs/deploy.md',
    'for going live.',
    '',
  );
}
process.stdout.write(lines.join('\n') + '\n');
