/**
 * infra/scripts/grant-graph-permissions.sh (the alternative to the Graph Bicep extension), run with
 * a stand-in `az` on PATH that answers the Graph look-ups and records every call. The grants it
 * makes must be exactly requiredGraphPermissions() from the code.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildInfraContract } from '../../dev/infra-contract';
import { requiredGraphPermissions } from '../../shared/adapters/graphPermissions';

const SCRIPT = join(__dirname, '..', '..', 'infra', 'scripts', 'grant-graph-permissions.sh');
const PRINCIPAL = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const USER_ADMINISTRATOR = buildInfraContract().graph.passwordResetRole.templateId;

// Answers like the Azure CLI would (`-o tsv` of the --query): app role ids are "role:<permission>".
const STUB = `#!/usr/bin/env node
const fs = require('fs');
const args = process.argv.slice(2);
fs.appendFileSync(process.env.AZ_LOG, JSON.stringify(args) + '\\n');
const opt = (n) => { const i = args.indexOf(n); return i >= 0 ? args[i + 1] : undefined; };
const existing = JSON.parse(process.env.STUB_EXISTING || '{}');
if (args[0] === 'cloud') { console.log('https://graph.microsoft.com/'); process.exit(0); }
if (args[0] !== 'rest') process.exit(3);
const method = opt('--method'); const url = opt('--url') || ''; const query = opt('--query') || '';
if (method === 'get' && url.endsWith('/servicePrincipals/${PRINCIPAL}?$select=id')) {
  // The identity is "not replicated yet" for the first STUB_MISSING look-ups.
  const seen = Number(fs.existsSync(process.env.AZ_LOG + '.seen') ? fs.readFileSync(process.env.AZ_LOG + '.seen', 'utf8') : '0') + 1;
  fs.writeFileSync(process.env.AZ_LOG + '.seen', String(seen));
  if (seen <= Number(process.env.STUB_MISSING || '0')) {
    console.error("Resource '${PRINCIPAL}' does not exist or one of its queried reference-property objects are not present.");
    process.exit(1);
  }
  console.log('${PRINCIPAL}');
} else if (method === 'get' && url.endsWith("/v1.0/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')")) {
  console.log('graph-sp');
} else if (method === 'get' && url.endsWith('/servicePrincipals/graph-sp?$select=appRoles')) {
  const m = /appRoles\\[\\?value=='([^']+)' && contains\\(allowedMemberTypes, 'Application'\\)\\]\\.id \\| \\[0\\]/.exec(query);
  console.log(m ? 'role:' + m[1] : '');
} else if (method === 'get' && url.endsWith('/servicePrincipals/${PRINCIPAL}/appRoleAssignments')) {
  const m = /resourceId=='graph-sp' && appRoleId=='role:([^']+)'/.exec(query);
  console.log(m && existing[m[1]] ? existing[m[1]] : '');
} else if (method === 'get' && url.includes('/roleManagement/directory/roleAssignments?$filter=')) {
  console.log(existing['User Administrator'] || '');
} else if (method !== 'post' && method !== 'delete') {
  process.exit(4);
}
`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  calls: string[][];
}

function run(args: string[], existing: Record<string, string> = {}, missing = 0): Run {
  const dir = mkdtempSync(join(tmpdir(), 'az-stub-'));
  try {
    const az = join(dir, 'az');
    writeFileSync(az, STUB);
    chmodSync(az, 0o755);
    const log = join(dir, 'calls.log');
    writeFileSync(log, '');
    const result = spawnSync('bash', [SCRIPT, ...args], {
      encoding: 'utf8',
      env: {
        ...process.env,
        PATH: `${dir}:${process.env.PATH ?? ''}`,
        AZ_LOG: log,
        STUB_EXISTING: JSON.stringify(existing),
        STUB_MISSING: String(missing),
        GRANT_WAIT_ATTEMPTS: '3',
        GRANT_WAIT_SECONDS: '0',
      },
    });
    const calls = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as string[]);
    return { status: result.status, stdout: result.stdout, stderr: result.stderr, calls };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const opt = (call: string[], name: string) => call[call.indexOf(name) + 1] ?? '';
const posts = (r: Run, path: string) =>
  r.calls
    .filter((c) => opt(c, '--method') === 'post' && opt(c, '--url').endsWith(path))
    .map((c) => JSON.parse(opt(c, '--body')) as Record<string, string>);
const grantedPermissions = (r: Run) =>
  posts(r, `/servicePrincipals/${PRINCIPAL}/appRoleAssignments`).map((b) =>
    (b.appRoleId ?? '').replace(/^role:/, ''),
  );

describe('grant-graph-permissions.sh', () => {
  test('grants exactly the permissions the code calls, to the identity, on Microsoft Graph', () => {
    const r = run(['--principal-id', PRINCIPAL]);
    expect(r.status).toBe(0);
    expect(grantedPermissions(r).sort()).toEqual([...requiredGraphPermissions(false)].sort());
    for (const body of posts(r, '/appRoleAssignments')) {
      expect(body).toMatchObject({ principalId: PRINCIPAL, resourceId: 'graph-sp' });
    }
    expect(posts(r, '/roleManagement/directory/roleAssignments')).toEqual([]);
  });

  test('--password-reset without a scope is refused: tenant-wide must be asked for', () => {
    const r = run(['--principal-id', PRINCIPAL, '--password-reset']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--admin-unit ID   (recommended)');
    expect(r.stderr).toContain('--tenant-wide');
    expect(r.calls).toEqual([]);
  });

  test('--password-reset --tenant-wide adds the password permission and the role on the directory', () => {
    const r = run(['--principal-id', PRINCIPAL, '--password-reset', '--tenant-wide']);
    expect(r.status).toBe(0);
    expect(grantedPermissions(r).sort()).toEqual([...requiredGraphPermissions(true)].sort());
    expect(posts(r, '/roleManagement/directory/roleAssignments')).toEqual([
      {
        '@odata.type': '#microsoft.graph.unifiedRoleAssignment',
        roleDefinitionId: USER_ADMINISTRATOR,
        principalId: PRINCIPAL,
        directoryScopeId: '/',
      },
    ]);
  });

  test('--admin-unit scopes the User Administrator role to an administrative unit', () => {
    const r = run(['--principal-id', PRINCIPAL, '--password-reset', '--admin-unit', 'au-1']);
    expect(posts(r, '/roleManagement/directory/roleAssignments')[0]?.directoryScopeId).toBe(
      '/administrativeUnits/au-1',
    );
  });

  test('is idempotent: nothing is posted when everything is in place', () => {
    const existing = Object.fromEntries(
      requiredGraphPermissions(true).map((p) => [p, `assignment-${p}`]),
    );
    const r = run(['--principal-id', PRINCIPAL, '--password-reset', '--admin-unit', 'au-1'], {
      ...existing,
      'User Administrator': 'ua-1',
    });
    expect(r.status).toBe(0);
    expect(r.calls.filter((c) => opt(c, '--method') === 'post')).toEqual([]);
    expect(r.stdout).toContain('already granted: User-PasswordProfile.ReadWrite.All');
  });

  test('--remove-password-reset deletes the password grant and the role, nothing else', () => {
    const password = requiredGraphPermissions(true).find(
      (p) => !requiredGraphPermissions(false).includes(p),
    ) as string;
    const r = run(['--principal-id', PRINCIPAL, '--remove-password-reset'], {
      [password]: 'pw-assignment',
      'User Administrator': 'ua-1',
    });
    expect(r.status).toBe(0);
    const deletes = r.calls
      .filter((c) => opt(c, '--method') === 'delete')
      .map((c) => opt(c, '--url'));
    expect(deletes).toEqual([
      `https://graph.microsoft.com/v1.0/servicePrincipals/${PRINCIPAL}/appRoleAssignments/pw-assignment`,
      'https://graph.microsoft.com/v1.0/roleManagement/directory/roleAssignments/ua-1',
    ]);
  });

  test('AuditLog.Read.All is granted only with --signin-watch, and removed with --remove-signin-watch', () => {
    const watch = requiredGraphPermissions(false, true).filter(
      (p) => !requiredGraphPermissions(false).includes(p),
    );
    expect(watch).toEqual([buildInfraContract().graph.signInWatchPermission]);
    const plain = run(['--principal-id', PRINCIPAL]);
    expect(grantedPermissions(plain)).not.toContain('AuditLog.Read.All');
    const on = run(['--principal-id', PRINCIPAL, '--signin-watch']);
    expect(on.status).toBe(0);
    expect(grantedPermissions(on).sort()).toEqual(
      [...requiredGraphPermissions(false, true)].sort(),
    );
    const off = run(['--principal-id', PRINCIPAL, '--remove-signin-watch'], {
      'AuditLog.Read.All': 'watch-assignment',
    });
    expect(off.status).toBe(0);
    expect(
      off.calls.filter((c) => opt(c, '--method') === 'delete').map((c) => opt(c, '--url')),
    ).toEqual([
      `https://graph.microsoft.com/v1.0/servicePrincipals/${PRINCIPAL}/appRoleAssignments/watch-assignment`,
    ]);
    expect(
      run(['--principal-id', PRINCIPAL, '--signin-watch', '--remove-signin-watch']).status,
    ).toBe(2);
  });

  test('--dry-run changes nothing', () => {
    const r = run(['--principal-id', PRINCIPAL, '--password-reset', '--tenant-wide', '--dry-run']);
    expect(r.status).toBe(0);
    expect(r.calls.filter((c) => ['post', 'delete'].includes(opt(c, '--method')))).toEqual([]);
    expect(r.stdout).toContain('would POST');
  });

  test('waits for a new identity to replicate, then grants', () => {
    const r = run(['--principal-id', PRINCIPAL], {}, 2);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('not visible in Entra ID yet');
    expect(grantedPermissions(r).sort()).toEqual([...requiredGraphPermissions(false)].sort());
  });

  test('gives up after the bounded wait with a clear message and grants nothing', () => {
    const r = run(['--principal-id', PRINCIPAL], {}, 3);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('was not found in Entra ID after 3 tries');
    expect(r.calls.filter((c) => opt(c, '--method') === 'post')).toEqual([]);
  });

  test('refuses a missing or malformed principal id', () => {
    const r = run(['--principal-id', 'not-a-guid']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--principal-id');
    expect(r.calls).toEqual([]);
  });

  test('uses the cloud of the signed-in CLI unless told otherwise', () => {
    const r = run(['--principal-id', PRINCIPAL, '--graph-endpoint', 'https://graph.microsoft.us/']);
    expect(r.calls.some((c) => c[0] === 'cloud')).toBe(false);
    expect(
      r.calls
        .filter((c) => c[0] === 'rest')
        .every((c) => opt(c, '--url').startsWith('https://graph.microsoft.us/v1.0/')),
    ).toBe(true);
  });
});
