// Log Analytics + workspace-based Application Insights with local (key) authentication disabled:
// telemetry is accepted only with an Entra token of the function identity.
param workspaceName string
param applicationInsightsName string
param location string
param tags object

@description('Days Log Analytics keeps data.')
@minValue(30)
@maxValue(730)
param retentionInDays int

@description('Principal id of the function identity (publishes telemetry).')
param functionPrincipalId string

@description('Function app name: the cloud role name in the saved queries.')
param functionAppName string

@description('Storage account that holds the audit table: used by the audit-access query.')
param storageAccountName string

param auditTableName string

// Monitoring Metrics Publisher: lets an Entra identity send telemetry when local auth is off.
var monitoringMetricsPublisher = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', loadJsonContent('../contract.json').roles.monitoringMetricsPublisher)

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    // Queries and ingestion with Entra ID only: no workspace keys.
    features: {
      disableLocalAuth: true
    }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

resource functionMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, functionPrincipalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: monitoringMetricsPublisher
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Saved queries (Log Analytics > Queries > "Offboarding"). Each is also a workspace function
// (the alias), so `OffboardingFailures | take 20` works in any query.
resource failuresQuery 'Microsoft.OperationalInsights/workspaces/savedSearches@2020-08-01' = {
  parent: workspace
  name: 'offboarding-failures'
  properties: {
    category: 'Offboarding'
    displayName: 'Offboarding: failed function invocations'
    functionAlias: 'OffboardingFailures'
    query: 'AppRequests | where AppRoleName =~ "${functionAppName}" and Success == false | project TimeGenerated, Name, ResultCode, DurationMs, OperationId, Properties | order by TimeGenerated desc'
  }
}

resource logsQuery 'Microsoft.OperationalInsights/workspaces/savedSearches@2020-08-01' = {
  parent: workspace
  name: 'offboarding-logs'
  properties: {
    category: 'Offboarding'
    displayName: 'Offboarding: function logs (warnings and errors first)'
    functionAlias: 'OffboardingLogs'
    query: 'AppTraces | where AppRoleName =~ "${functionAppName}" | project TimeGenerated, SeverityLevel, Message, OperationName, OperationId, Properties | order by SeverityLevel desc, TimeGenerated desc'
  }
}

resource auditAccessQuery 'Microsoft.OperationalInsights/workspaces/savedSearches@2020-08-01' = {
  parent: workspace
  name: 'offboarding-audit-access'
  properties: {
    category: 'Offboarding'
    displayName: 'Offboarding: who wrote or deleted audit records'
    functionAlias: 'OffboardingAuditAccess'
    query: 'StorageTableLogs | where AccountName =~ "${storageAccountName}" and Uri has "/${auditTableName}" | project TimeGenerated, OperationName, StatusCode, AuthenticationType, RequesterObjectId, CallerIpAddress, Uri | order by TimeGenerated desc'
  }
}

output workspaceId string = workspace.id
output applicationInsightsName string = applicationInsights.name
output applicationInsightsId string = applicationInsights.id
