// Service Bus namespace (Standard, Entra ID only) and the two event queues, configured for the
// retry design in shared/queuePolicy.ts. Every data role is scoped to a queue, never the namespace.
@description('Namespace name.')
param name string

param location string
param tags object

@description('EMPLOYEE_LEAVING_QUEUE.')
param employeeLeavingQueueName string

@description('MFA_ENABLED_QUEUE.')
param mfaEnabledQueueName string

@description('Principal id of the function identity.')
param functionPrincipalId string

@description('Object id of the HR publisher; empty for none.')
param hrPublisherPrincipalId string

@description('Principal type of the HR publisher.')
@allowed(['ServicePrincipal', 'Group', 'User'])
param hrPublisherPrincipalType string

@description('Principals ({ id, type }) that run `offboard dlq list/replay` and `offboard enqueue`.')
param opsPrincipals array

var serviceBusDataReceiver = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0')
var serviceBusDataSender = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39')

// Mirrors QUEUE_POLICY (shared/queuePolicy.ts); test/infra compares every key.
// - maxDeliveryCount 5: transient failures never abandon (they schedule a copy and complete), so
//   deliveries are only burnt by permanent failures, which should reach the dead-letter queue fast.
// - lockDuration PT1M: one attempt is bounded well below it (short in-invocation Graph retries).
// - duplicate detection PT10M: drops an HR system's resend of the same MessageId.
// - defaultMessageTimeToLive P400D: longer than the furthest leave date scheduled (365 days).
var queueProperties = {
  maxDeliveryCount: 5
  lockDuration: 'PT1M'
  requiresDuplicateDetection: true
  duplicateDetectionHistoryTimeWindow: 'PT10M'
  deadLetteringOnMessageExpiration: true
  defaultMessageTimeToLive: 'P400D'
  requiresSession: false
  enablePartitioning: false
  enableBatchedOperations: true
}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource employeeLeavingQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: employeeLeavingQueueName
  properties: queueProperties
}

resource mfaEnabledQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: mfaEnabledQueueName
  properties: queueProperties
}

// Function identity: Data Receiver for the triggers, Data Sender to schedule delayed retries and
// leave dates on its own queue (and cancel them), on each queue.
resource functionReceiveEmployeeLeaving 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(employeeLeavingQueue.id, functionPrincipalId, serviceBusDataReceiver)
  scope: employeeLeavingQueue
  properties: {
    roleDefinitionId: serviceBusDataReceiver
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionSendEmployeeLeaving 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(employeeLeavingQueue.id, functionPrincipalId, serviceBusDataSender)
  scope: employeeLeavingQueue
  properties: {
    roleDefinitionId: serviceBusDataSender
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionReceiveMfaEnabled 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(mfaEnabledQueue.id, functionPrincipalId, serviceBusDataReceiver)
  scope: mfaEnabledQueue
  properties: {
    roleDefinitionId: serviceBusDataReceiver
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionSendMfaEnabled 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(mfaEnabledQueue.id, functionPrincipalId, serviceBusDataSender)
  scope: mfaEnabledQueue
  properties: {
    roleDefinitionId: serviceBusDataSender
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// HR publisher: send "employee leaving" events, nothing else.
resource hrSendEmployeeLeaving 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(hrPublisherPrincipalId)) {
  name: guid(employeeLeavingQueue.id, hrPublisherPrincipalId, serviceBusDataSender)
  scope: employeeLeavingQueue
  properties: {
    roleDefinitionId: serviceBusDataSender
    principalId: hrPublisherPrincipalId
    principalType: hrPublisherPrincipalType
  }
}

// Ops: `offboard dlq list/replay` receive (peek, complete) from the dead-letter queues and send
// replays; `offboard enqueue` sends MFA waves. The dead-letter queue inherits its queue's roles.
resource opsReceiveEmployeeLeaving 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for ops in opsPrincipals: {
    name: guid(employeeLeavingQueue.id, ops.id, serviceBusDataReceiver)
    scope: employeeLeavingQueue
    properties: {
      roleDefinitionId: serviceBusDataReceiver
      principalId: ops.id
      principalType: ops.type
    }
  }
]

resource opsSendEmployeeLeaving 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for ops in opsPrincipals: {
    name: guid(employeeLeavingQueue.id, ops.id, serviceBusDataSender)
    scope: employeeLeavingQueue
    properties: {
      roleDefinitionId: serviceBusDataSender
      principalId: ops.id
      principalType: ops.type
    }
  }
]

resource opsReceiveMfaEnabled 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for ops in opsPrincipals: {
    name: guid(mfaEnabledQueue.id, ops.id, serviceBusDataReceiver)
    scope: mfaEnabledQueue
    properties: {
      roleDefinitionId: serviceBusDataReceiver
      principalId: ops.id
      principalType: ops.type
    }
  }
]

resource opsSendMfaEnabled 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for ops in opsPrincipals: {
    name: guid(mfaEnabledQueue.id, ops.id, serviceBusDataSender)
    scope: mfaEnabledQueue
    properties: {
      roleDefinitionId: serviceBusDataSender
      principalId: ops.id
      principalType: ops.type
    }
  }
]

output name string = namespace.name
output id string = namespace.id
// Host name only (no scheme, no port): what ServiceBusConnection__fullyQualifiedNamespace expects.
output fullyQualifiedNamespace string = split(split(split(namespace.properties.serviceBusEndpoint, '//')[1], '/')[0], ':')[0]
