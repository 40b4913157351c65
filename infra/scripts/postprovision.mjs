#!/usr/bin/env node
/**
 * azd postprovision hook (azure.yaml): says what is still to do after `azd provision` / `azd up`.
 * The Graph permissions are a privileged, deliberate second step (docs/deploy.md, "Graph
 * permissions"), so a deployment that did not grant them says so, with the command to run.
 * It only prints: it never fails the deployment.
 */
const env = process.env;
const granted = env.GRAPH_PERMISSIONS_GRANTED_BY_DEPLOYMENT === 'true';
const wanted = (env.GRANT_GRAPH_PERMISSIONS ?? 'false') === 'true';
const principal = env.MANAGED_IDENTITY_PRINCIPAL_ID ?? '<MANAGED_IDENTITY_PRINCIPAL_ID>';
const passwordReset = env.ENABLE_PASSWORD_RESET === 'true';
const dryRun = (env.DRY_RUN ?? 'true') !== 'false';

const lines = [''];
if (!granted) {
  lines.push(
    'NEXT STEP: the function identity has no Microsoft Graph permissions yet: its Graph calls fail',
    'with 403 until an administrator grants them.',
  );
  if (wanted) {
    lines.push(
      'GRANT_GRAPH_PERMISSIONS is true, but the Microsoft Graph Bicep extension works in the public',
      'cloud only: grant with the script instead.',
    );
  }
  lines.push(
    'A Privileged Role Administrator (or Global Administrator) runs, from this checkout:',
    '',
    `  az login --tenant ${env.AZURE_TENANT_ID ?? '<tenant id>'}`,
    `  infra/scripts/grant-graph-permissions.sh --principal-id ${principal}`,
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
if (dryRun) {
  lines.push(
    'DRY_RUN is true: events are read and audited, nothing is written to Graph. See docs/deploy.md',
    'for going live.',
    '',
  );
}
process.stdout.write(lines.join('\n') + '\n');
