// The one identity the function app runs as: Service Bus triggers, delayed-retry scheduling,
// the audit table, host storage, Application Insights and Microsoft Graph all use it.
@description('Name of the user-assigned managed identity.')
param name string

param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
