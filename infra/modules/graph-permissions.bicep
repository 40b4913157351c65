// Microsoft Graph application permissions for the function identity, granted with the Microsoft
// Graph Bicep extension. An app role assignment to a managed identity IS the admin consent: there
// is no separate consent step. Deploying this needs Privileged Role Administrator (or Global
// Administrator) in Entra ID; tenants that cannot do that set grantGraphPermissions=false and run
// infra/scripts/grant-graph-permissions.sh instead.
// The permission list is requiredGraphPermissions() in shared/graph/permissions.ts; test/infra compares.
extension microsoftGraphV1

@description('Principal (object) id of the function identity.')
param principalId string

@description('Also grant the password permission (the identity then also needs the User Administrator Entra role).')
param enablePasswordReset bool

// Read the user, revoke sessions, disable the account: always needed.
var permissions = [
  'User.Read.All'
  'User.RevokeSessions.All'
  'User.EnableDisableAccount.All'
]
var passwordResetPermission = 'User-PasswordProfile.ReadWrite.All'

resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: '00000003-0000-0000-c000-000000000000'
}

resource grants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for permission in permissions: {
    appRoleId: filter(microsoftGraph.appRoles, role => role.value == permission)[0].id
    principalId: principalId
    resourceId: microsoftGraph.id
  }
]

resource passwordResetGrant 'Microsoft.Graph/appRoleAssignedTo@v1.0' = if (enablePasswordReset) {
  appRoleId: filter(microsoftGraph.appRoles, role => role.value == passwordResetPermission)[0].id
  principalId: principalId
  resourceId: microsoftGraph.id
}

output grantedPermissions array = enablePasswordReset ? concat(permissions, [passwordResetPermission]) : permissions
