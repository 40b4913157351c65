// Entra offboarding: everything `azd up` creates, with least privilege and no keys.
// Queue names and policy, app settings, Graph permissions and role ids come from contract.json,
// generated from the code by dev/infra-contract.ts (`npm run contract`); test/infra checks it.
// CI builds and lints it with the official Bicep compiler (dev/bicep.sh check).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment. Names the resource group and seeds the resource token.')
param environmentName string

@minLength(1)
@description('Region for every resource. It must offer the Flex Consumption plan: the list is the one of the Azure-Samples Flex Consumption azd templates; `az functionapp list-flexconsumption-locations` gives the current one.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of whoever runs azd (AZURE_PRINCIPAL_ID). Used only when grantDeployerOpsAccess is true.')
param principalId string = ''

@description('Principal type of principalId.')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@description('Also give the deploying user the ops role set (dead-letter replay, enqueue, audit read). Off by default.')
param grantDeployerOpsAccess bool = false

@description('DRY_RUN app setting. true (the first-deploy default): read and audit what would be done, write nothing to Graph.')
param dryRun bool = true

@description('SIGNIN_WATCH_ENABLED app setting: after each departure, check the sign-in log for sign-ins after the access cut-off. Off by default; needs Entra ID P1 or P2, and AuditLog.Read.All granted in the separate Graph grant step (--signin-watch).')
param signInWatch bool = false

@description('PROTECTED_USERS app setting (required, no default: the app does not start without it): object ids and/or UPNs never written to, the break-glass accounts; or "none" to protect nobody on purpose.')
@minLength(1)
param protectedUsers string

@description('GRAPH_ENDPOINT app setting: Microsoft Graph root of the cloud in use. Empty: the code\'s default (contract.json).')
param graphEndpoint string = ''

@description('Object id of the HR system that publishes "employee leaving" events. Empty: no publisher is authorized yet.')
param hrPublisherPrincipalId string = ''

@description('Principal type of hrPublisherPrincipalId.')
@allowed(['ServicePrincipal', 'Group', 'User'])
param hrPublisherPrincipalType string = 'ServicePrincipal'

@description('Object id of the ops group that runs `offboard dlq list/replay`, `offboard enqueue` and `offboard audit`. Empty: none.')
param opsGroupPrincipalId string = ''

@description('Principal type of opsGroupPrincipalId.')
@allowed(['Group', 'User', 'ServicePrincipal'])
param opsGroupPrincipalType string = 'Group'

@description('Service Bus access of the ops principals. sendOnly (default): `offboard enqueue` only. receiveAndSend: also `offboard dlq list/replay`; Azure RBAC cannot scope to a dead-letter queue, so this can also take live events off the queues: grant it for the time of a replay (docs/deploy-reference.md, "Operators"). none: audit reading only.')
@allowed(['receiveAndSend', 'sendOnly', 'none'])
param opsQueueAccess string = 'sendOnly'

@description('E-mail address that receives the alerts. Empty: the action group has no receiver yet.')
param alertEmail string = ''

@description('Alert when the HR publisher sent no "employee leaving" event for this many hours (the app\'s own retries and leave dates do not count). 0: no such alert.')
@allowed([0, 1, 6, 12, 24])
param noEventsAlertHours int = 0

@description('Log Analytics retention in days (function logs, audit-table access logs).')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Days each blob of the immutable audit log stays unchangeable and undeletable. Lock the policy once this is right (docs/audit.md).')
@minValue(1)
@maxValue(146000)
param auditLogRetentionDays int = 365

@description('true once an owner has locked the audit log\'s immutability policy (docs/deploy.md, "Lock the audit log"): a locked policy cannot be updated, so provisioning then leaves it alone.')
param auditLogPolicyLocked bool = false

@description('Upper bound of Flex Consumption instances (40-1000: below 40 is a preview in some regions only). The Graph write budget is shared by every instance (PACING_WRITES_PER_SECOND), so more instances never mean more Graph writes.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Always-ready instances kept warm for the departures function (0 = scale to zero). Each is billed while idle; see docs/deploy.md.')
@minValue(0)
@maxValue(10)
param departureAlwaysReadyInstances int = 0

@description('Flex Consumption instance memory.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

var contract = loadJsonContent('contract.json')
var queueNames = contract.queues
var auditTableName = contract.auditTableName
var outcomeTopicName = contract.appSettings.defaults.OUTCOME_TOPIC
var guardrailTableName = contract.appSettings.defaults.GUARDRAIL_TABLE_NAME
var auditLogContainerName = contract.appSettings.defaults.AUDIT_LOG_CONTAINER
var graphEndpointSetting = empty(graphEndpoint) ? contract.appSettings.defaults.GRAPH_ENDPOINT : graphEndpoint
var deploymentContainerName = 'app-package'
var functionAppName = 'func-${resourceToken}'

// Principals that get the ops role set: the ops group and, if asked, the deploying user. Role
// assignment names are guid(scope, principal, role), so one object id given twice would declare the
// same assignment twice and ARM would reject the template: ids are compared lower-cased and kept once.
var opsGroupId = toLower(opsGroupPrincipalId)
var deployerId = toLower(principalId)
var opsGroupPrincipals = empty(opsGroupId) ? [] : [{ id: opsGroupId, type: opsGroupPrincipalType }]
var deployerOpsPrincipals = grantDeployerOpsAccess && !empty(deployerId) && deployerId != opsGroupId ? [{ id: deployerId, type: principalType }] : []
var opsPrincipals = concat(opsGroupPrincipals, deployerOpsPrincipals)
var opsPrincipalIds = map(opsPrincipals, p => p.id)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
    functionPrincipalId: identity.outputs.principalId
    functionAppName: functionAppName
    storageAccountName: 'st${resourceToken}'
    auditTableName: auditTableName
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    auditTableName: auditTableName
    auditLogContainerName: auditLogContainerName
    auditLogAccountName: 'stlog${resourceToken}'
    auditLogRetentionDays: auditLogRetentionDays
    auditLogPolicyLocked: auditLogPolicyLocked
    guardrailTableName: guardrailTableName
    functionPrincipalId: identity.outputs.principalId
    opsPrincipals: opsPrincipals
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-${resourceToken}'
    location: location
    tags: tags
    employeeLeavingQueueName: queueNames.employeeLeaving
    mfaEnabledQueueName: queueNames.mfaEnabled
    outcomeTopicName: outcomeTopicName
    functionPrincipalId: identity.outputs.principalId
    hrPublisherPrincipalId: toLower(hrPublisherPrincipalId)
    hrPublisherPrincipalType: hrPublisherPrincipalType
    opsPrincipals: opsPrincipals
    opsPrincipalIds: opsPrincipalIds
    opsQueueAccess: opsQueueAccess
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    auditLogBlobEndpoint: storage.outputs.auditLogBlobEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    employeeLeavingQueueName: queueNames.employeeLeaving
    mfaEnabledQueueName: queueNames.mfaEnabled
    auditTableName: auditTableName
    outcomeTopicName: outcomeTopicName
    auditLogContainerName: auditLogContainerName
    guardrailTableName: guardrailTableName
    graphEndpoint: graphEndpointSetting
    protectedUsers: protectedUsers
    dryRun: dryRun
    signInWatch: signInWatch
    maximumInstanceCount: maximumInstanceCount
    departureAlwaysReadyInstances: departureAlwaysReadyInstances
    instanceMemoryMB: instanceMemoryMB
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    actionGroupName: 'ag-${resourceToken}'
    tags: tags
    alertEmail: alertEmail
    serviceBusNamespaceName: serviceBus.outputs.name
    queueNames: [
      queueNames.employeeLeaving
      queueNames.mfaEnabled
    ]
    noEventsQueueName: queueNames.employeeLeaving
    noEventsFunctionName: contract.functions.employeeLeaving
    noEventsAlertHours: noEventsAlertHours
    outcomeTopicName: outcomeTopicName
    location: location
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    workspaceId: monitoring.outputs.workspaceId
    functionAppName: functionAppName
  }
}

// The figures of `offboard report` as charts over time (docs/report.md).
module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    name: 'Offboarding (${environmentName})'
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
    functionAppName: functionAppName
  }
}

// Written to .azure/<env>/.env by azd: the ops CLI and the scripts read them from there.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output ServiceBusConnection__fullyQualifiedNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output EMPLOYEE_LEAVING_QUEUE string = queueNames.employeeLeaving
output MFA_ENABLED_QUEUE string = queueNames.mfaEnabled
output AUDIT_TABLE_ENDPOINT string = functionApp.outputs.auditTableEndpoint
output AUDIT_TABLE_NAME string = auditTableName
// What the ops commands read from `azd env get-values` (guardrail, audit verify).
output GUARDRAIL_TABLE_NAME string = guardrailTableName
output AUDIT_BLOB_ENDPOINT string = storage.outputs.auditLogBlobEndpoint
output AUDIT_LOG_CONTAINER string = auditLogContainerName
output OUTCOME_TOPIC string = outcomeTopicName
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.workspaceId
// The lock step and tear-down name them (docs/deploy.md).
output AUDIT_LOG_ACCOUNT_NAME string = storage.outputs.auditLogAccountName
