// One storage account with shared-key access disabled: Functions host storage, the Flex
// deployment container, and the audit table. Every client uses Entra ID.
@description('Storage account name (3-24 lower-case letters and digits).')
param name string

param location string
param tags object

@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string

@description('Audit table (AUDIT_TABLE_NAME).')
param auditTableName string

@description('Container of the immutable audit log (append blobs under a time-based immutability policy).')
param auditLogContainerName string

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

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource auditTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: auditTableName
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
