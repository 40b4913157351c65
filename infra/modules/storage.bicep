// Two storage accounts with shared-key access disabled, every client on Entra ID:
// - the app's: Functions host storage, the Flex deployment container, the audit table and the
//   guardrail table;
// - the immutable audit log's, where the function identity may only create and append to blobs
//   (on the app's account the Functions host needs Storage Blob Data Owner, which could rewrite
//   anything there).
@description('Storage account name (3-24 lower-case letters and digits).')
param name string

@description('Storage account of the immutable audit log (3-24 lower-case letters and digits).')
param auditLogAccountName string

@description('The guardrail table (GUARDRAIL_TABLE_NAME): operators write their decisions there.')
param guardrailTableName string

param location string
param tags object

@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string

@description('Audit table (AUDIT_TABLE_NAME).')
param auditTableName string

@description('Container of the immutable audit log (append blobs under a time-based immutability policy).')
param auditLogContainerName string

@description('Days each blob of the immutable audit log stays unchangeable and undeletable (time-based retention, counted from the blob\'s creation).')
@minValue(1)
@maxValue(146000)
param auditLogRetentionDays int = 365

@description('true once an owner has locked the immutability policy: a locked policy accepts no update (only extend), so the template leaves it alone.')
param auditLogPolicyLocked bool = false

@description('Principal id of the function identity.')
param functionPrincipalId string

@description('Principals ({ id, type }) that read the audit for `offboard audit` and `offboard dlq list`.')
param opsPrincipals array

@description('Log Analytics workspace that receives the audit-table access logs.')
param logAnalyticsWorkspaceId string

var contract = loadJsonContent('../contract.json')
// Storage Blob Data Owner: the Functions host keeps keys and locks in blobs and creates its own
// containers; Flex Consumption reads (and azd writes, through the platform) the deployment package.
var storageBlobDataOwner = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contract.roles.storageBlobDataOwner)
// Storage Table Data Contributor: audit records (insert, update on retry) and the host's diagnostic events table.
var storageTableDataContributor = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contract.roles.storageTableDataContributor)
// Storage Table Data Reader: ops read the audit, never write it.
var storageTableDataReader = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contract.roles.storageTableDataReader)

// The immutable audit log's data actions (learn.microsoft.com, "Actions and attributes for Azure
// role assignment conditions for Azure Blob Storage"): `blobs/add/action` is "create a blob or
// snapshot, or append data", which is all the app does there (Put Blob of a new append blob, Append
// Block). Not `blobs/write` (overwrite), `blobs/delete` or `blobs/read`.
var auditLogAppendAction = 'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
// `blobs/read` is List Blobs and Get Blob: what `offboard audit verify` does, nothing more.
var auditLogReadAction = 'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The immutable audit log's own account: the function identity's only right here is the
// appender role on the container below.
resource auditLogStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: auditLogAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource auditLogBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: auditLogStorage
  name: 'default'
}

// The immutable audit log: append blobs of every final record (shared/adapters/immutableAuditLog.ts).
resource auditLogContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: auditLogBlobService
  name: auditLogContainerName
  properties: {
    publicAccess: 'None'
  }
}

// WORM: for auditLogRetentionDays after a blob is created nobody (the app, an operator, an account
// owner) can overwrite or delete it; protected append writes let new records be appended. The
// policy is created UNLOCKED, on purpose: while unlocked, a principal allowed to manage the
// container (Owner, Storage Account Contributor, Storage Blob Data Owner on this account; the
// function identity holds none of them here) can shorten or delete the policy. Locking is irreversible (a locked policy can only be extended; the
// container and the account cannot be deleted while a blob is retained), so an owner takes it
// deliberately once the retention period is right (docs/audit.md):
//   az storage container immutability-policy lock --resource-group RG --account-name ACCOUNT \
//     --container-name CONTAINER --if-match "$(az storage container immutability-policy show \
//     --resource-group RG --account-name ACCOUNT --container-name CONTAINER --query etag -o tsv)"
// Create/update applies to an unlocked policy only: once locked, set AUDIT_LOG_POLICY_LOCKED=true so
// every later provision (going live included) skips it instead of failing on it.
resource auditLogImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (!auditLogPolicyLocked) {
  parent: auditLogContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditLogRetentionDays
    allowProtectedAppendWrites: true
  }
}

// Nobody deletes the audit log's account by accident or with Contributor rights (`azd down` included):
// deleting it takes removing this lock first, which needs Owner (Microsoft.Authorization/locks/delete).
resource auditLogDeleteLock 'Microsoft.Authorization/locks@2020-05-01' = {
  name: 'audit-log-do-not-delete'
  scope: auditLogStorage
  properties: {
    level: 'CanNotDelete'
    notes: 'The immutable audit log of the offboarding app. See docs/deploy.md, "Tear down".'
  }
}

// No built-in role only appends (Storage Blob Data Contributor also reads, overwrites and deletes).
resource auditLogAppenderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, storage.id, 'audit-log-appender')
  properties: {
    roleName: 'Offboarding audit log appender (${name})'
    description: 'Creates append blobs and appends to them in the immutable audit log: no read, no overwrite, no delete.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          auditLogAppendAction
        ]
        notDataActions: []
      }
    ]
  }
}

// Narrower than Storage Blob Data Reader (no containers/read, no user delegation key for SAS).
resource auditLogReaderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, storage.id, 'audit-log-reader')
  properties: {
    roleName: 'Offboarding audit log reader (${name})'
    description: 'Lists and reads the immutable audit log (offboard audit verify): no write, no delete.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          auditLogReadAction
        ]
        notDataActions: []
      }
    ]
  }
}

resource functionAuditLogAppender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(auditLogContainer.id, functionPrincipalId, auditLogAppenderRole.id)
  scope: auditLogContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', auditLogAppenderRole.name)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource opsAuditLogReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for ops in opsPrincipals: {
    name: guid(auditLogContainer.id, ops.id, auditLogReaderRole.id)
    scope: auditLogContainer
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', auditLogReaderRole.name)
      principalId: ops.id
      principalType: ops.type
    }
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource auditTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: auditTableName
}

resource guardrailTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: guardrailTableName
}

resource functionBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: storageBlobDataOwner
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: storageTableDataContributor
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource opsAuditReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for ops in opsPrincipals: {
    name: guid(auditTable.id, ops.id, storageTableDataReader)
    scope: auditTable
    properties: {
      roleDefinitionId: storageTableDataReader
      principalId: ops.id
      principalType: ops.type
    }
  }
]

// Operators record their guardrail decisions and wave approvals (offboard guardrail, enqueue) in
// the guardrail table only; the audit table they only read.
resource opsGuardrailWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for ops in opsPrincipals: {
    name: guid(guardrailTable.id, ops.id, storageTableDataContributor)
    scope: guardrailTable
    properties: {
      roleDefinitionId: storageTableDataContributor
      principalId: ops.id
      principalType: ops.type
    }
  }
]

// Who wrote or deleted audit records, kept in Log Analytics (query: OffboardingAuditAccess).
resource auditTableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-table-access'
  scope: tableService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output tableEndpoint string = storage.properties.primaryEndpoints.table
output auditLogAccountName string = auditLogStorage.name
output auditLogBlobEndpoint string = auditLogStorage.properties.primaryEndpoints.blob
