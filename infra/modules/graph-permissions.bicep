// Microsoft Graph application permissions for the function identity, granted with the Microsoft
// Graph Bicep extension (public cloud only; not supported in deployment stacks). An app role
// assignment to a managed identity IS the admin consent: there is no separate consent step.
// Deploying this needs Privileged Role Administrator (or Global Administrator) in Entra ID, so it is
// off by default (grantGraphPermissions); the default path is infra/scripts/grant-graph-permissions.sh.
// The permission list is requiredGraphPermissions() in shared/graph/permissions.ts, via contract.json.
extension microsoftGraphV1

@description('Principal (object) id of the function identity.')
param principalId string

@description('Also grant the password permission (the identity then also needs the User Administrator Entra role).')
param enablePasswordReset bool

var contract = loadJsonContent('../contract.json')
// Read the user, revoke sessions, disable the account: always needed.
var permissions = contract.graph.permissions
var passwordResetPermission = contract.graph.passwordResetPermission

resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: contract.graph.appId
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
