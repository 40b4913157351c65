// The function app on Flex Consumption (Linux, Node 22), running as the user-assigned identity.
// Every connection is identity-based. The app settings are SETTINGS in shared/config.ts: test/infra
// checks this block against infra/contract.json (every requiredInAzure name, nothing localOnly).
param name string
param planName string
param location string
param tags object

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('Blob endpoint of the storage account (with trailing slash).')
param storageBlobEndpoint string

@description('Table endpoint of the storage account (with trailing slash).')
param storageTableEndpoint string
@description('Blob endpoint of the immutable audit log\'s own account (AUDIT_BLOB_ENDPOINT).')
param auditLogBlobEndpoint string

param deploymentContainerName string
param applicationInsightsName string
param serviceBusFullyQualifiedNamespace string
param employeeLeavingQueueName string
param mfaEnabledQueueName string
param auditTableName string
@description('GUARDRAIL_TABLE_NAME: the blast-radius guardrail\'s table (operators write their decisions there).')
param guardrailTableName string
@description('OUTCOME_TOPIC: the Service Bus topic final outcomes are published to.')
param outcomeTopicName string
@description('AUDIT_LOG_CONTAINER: the immutable audit log container (in the same storage account).')
param auditLogContainerName string
param graphEndpoint string
param protectedUsers string
param dryRun bool

@description('The sign-in watch after departures (SIGNIN_WATCH_ENABLED); needs AuditLog.Read.All granted and Entra ID P1/P2.')
param signInWatch bool = false

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@allowed([512, 2048, 4096])
param instanceMemoryMB int

@description('Always-ready instances for the departures function; 0 lets it scale to zero.')
@minValue(0)
param departureAlwaysReadyInstances int

// AUDIT_TABLE_ENDPOINT is documented without a trailing slash.
var auditTableEndpoint = endsWith(storageTableEndpoint, '/') ? substring(storageTableEndpoint, 0, max(length(storageTableEndpoint) - 1, 0)) : storageTableEndpoint

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // A departure that wakes a scaled-to-zero app waits for a cold start; warm instances avoid it.
        alwaysReady: departureAlwaysReadyInstances == 0 ? [] : [
          {
            name: 'function:${loadJsonContent('../contract.json').functions.employeeLeaving}'
            instanceCount: departureAlwaysReadyInstances
          }
        ]
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

// No basic (user name and password) publishing credentials: azd deploys with Entra ID, and nothing
// else should be able to push code to an app that holds Graph write permissions.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // Functions host storage, through the identity (Storage Blob Data Owner, Table Data Contributor).
    AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
    AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // Application Insights with Entra authentication (local auth is disabled on the component).
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // Service Bus triggers and the retry scheduler.
    ServiceBusConnection__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
    ServiceBusConnection__credential: 'managedidentity'
    ServiceBusConnection__clientId: identityClientId
    EMPLOYEE_LEAVING_QUEUE: employeeLeavingQueueName
    MFA_ENABLED_QUEUE: mfaEnabledQueueName
    // Microsoft Graph and the audit table, through the same identity.
    AZURE_CLIENT_ID: identityClientId
    GRAPH_ENDPOINT: graphEndpoint
    AUDIT_TABLE_ENDPOINT: auditTableEndpoint
    AUDIT_TABLE_NAME: auditTableName
    GUARDRAIL_TABLE_NAME: guardrailTableName
    // The immutable audit log (append blobs) and the outcome topic.
    AUDIT_BLOB_ENDPOINT: auditLogBlobEndpoint
    AUDIT_LOG_CONTAINER: auditLogContainerName
    OUTCOME_TOPIC: outcomeTopicName
    // Policy.
    PROTECTED_USERS: protectedUsers
    DRY_RUN: dryRun ? 'true' : 'false'
    SIGNIN_WATCH_ENABLED: signInWatch ? 'true' : 'false'
  }
}

output name string = site.name
output id string = site.id
output auditTableEndpoint string = auditTableEndpoint
