// Microsoft Graph application permissions for the function identity, granted with the Microsoft
// Graph Bicep extension (public cloud only; not supported in deployment stacks): an alternative to
// infra/scripts/grant-graph-permissions.sh for administrators who deploy Bicep. An app role
// assignment to a managed identity IS the admin consent: there is no separate consent step.
// Its own entry file, deployed on its own by a Privileged Role Administrator after `azd provision`
// (docs/deploy-reference.md, "Granting with Bicep"):
//   az deployment group create --resource-group RG --template-file infra/graph/grant-graph-permissions.bicep \
//     --parameters principalId=MANAGED_IDENTITY_PRINCIPAL_ID
// Not part of main.bicep: the extension is restored from a container registry, which CI cannot
// reach, and the privileged grant is a deliberate step of its own.
// The permission list is requiredGraphPermissions() in shared/graph/permissions.ts, via contract.json.
extension microsoftGraphV1

@description('Principal (object) id of the function identity.')
param principalId string

@description('Also grant the password permission (the identity then also needs the User Administrator Entra role).')
param enablePasswordReset bool = false

@description('Also grant AuditLog.Read.All, for the sign-in watch (SIGNIN_WATCH_ENABLED; the tenant needs Entra ID P1 or P2).')
param enableSignInWatch bool = false

var contract = loadJsonContent('../contract.json')
// Read the user, revoke sessions, disable the account: always needed.
var permissions = contract.graph.permissions
var passwordResetPermission = contract.graph.passwordResetPermission
var signInWatchPermission = contract.graph.signInWatchPermission

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

resource signInWatchGrant 'Microsoft.Graph/appRoleAssignedTo@v1.0' = if (enableSignInWatch) {
  appRoleId: filter(microsoftGraph.appRoles, role => role.value == signInWatchPermission)[0].id
  principalId: principalId
  resourceId: microsoftGraph.id
}

output grantedPermissions array = concat(
  permissions,
  enablePasswordReset ? [passwordResetPermission] : [],
  enableSignInWatch ? [signInWatchPermission] : []
)
