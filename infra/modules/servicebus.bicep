// Service Bus namespace (Standard, Entra ID only), the two event queues, configured for the
// retry design in shared/queuePolicy.ts (via contract.json), and the outcome topic with a sample
// subscription (docs/outcomes.md). Every data role is scoped to a queue or the topic, never the
// namespace.
@description('Namespace name.')
param name string

param location string
param tags object

@description('EMPLOYEE_LEAVING_QUEUE.')
param employeeLeavingQueueName string

@description('MFA_ENABLED_QUEUE.')
param mfaEnabledQueueName string

@description('Topic the app publishes final outcomes to (CloudEvents 1.0).')
param outcomeTopicName string

@description('The sample subscription on the outcome topic (docs/outcomes.md); a real subscriber gets its own.')
param outcomeSampleSubscriptionName string = 'hr-itsm'

@description('Principal id of the function identity.')
param functionPrincipalId string

@description('Object id of the HR publisher; empty for none.')
param hrPublisherPrincipalId string

@description('Principal type of the HR publisher.')
@allowed(['ServicePrincipal', 'Group', 'User'])
param hrPublisherPrincipalType string

@description('Principals ({ id, type }, ids lower-case and unique) that run `offboard dlq list/replay` and `offboard enqueue`.')
param opsPrincipals array

@description('The ids of opsPrincipals.')
param opsPrincipalIds array

@description('receiveAndSend, sendOnly or none (see main.bicep).')
@allowed(['receiveAndSend', 'sendOnly', 'none'])
param opsQueueAccess string

var contract = loadJsonContent('../contract.json')
var serviceBusDataReceiver = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contract.roles.serviceBusDataReceiver)
var serviceBusDataSender = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contract.roles.serviceBusDataSender)

// QUEUE_POLICY (shared/queuePolicy.ts) through contract.json, plus settings the code does not depend on.
var queueProperties = union(contract.queueProperties, {
  requiresSession: false
  enablePartitioning: false
  enableBatchedOperations: true
})

var opsReceivers = opsQueueAccess == 'receiveAndSend' ? opsPrincipals : []
var opsSenders = opsQueueAccess == 'none' ? [] : opsPrincipals
// An HR publisher that is also an ops sender already has Data Sender on employee-leaving: a second,
// identical assignment would have the same name and ARM would reject the template.
var hrPublisherIsOpsSender = contains(opsPrincipalIds, hrPublisherPrincipalId) && opsQueueAccess != 'none'

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

// Outcome topic (shared/adapters/outcomeTopic.ts): every final outcome as a CloudEvents 1.0 event.
// The MessageId is the event id, so duplicate detection drops the same outcome published again
// within a day (a redelivery after the sink failed, a duplicate HR event); subscribers
// de-duplicate on the id beyond that. A 14-day TTL bounds what an absent subscriber piles up;
// expired messages go to the subscription's dead-letter queue, which keeps them.
resource outcomeTopic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: namespace
  name: outcomeTopicName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'P1D'
    defaultMessageTimeToLive: 'P14D'
    maxSizeInMegabytes: 1024
    enablePartitioning: false
    enableBatchedOperations: true
  }
}

// Sample subscription: every outcome (no filter). A real subscriber (HR, ITSM, SIEM) gets a
// subscription of its own, with a SQL filter on the message's application properties if it wants
// only some outcomes (for example outcome IN ('failed', 'refused', 'held')), and Azure Service Bus
// Data Receiver scoped to that subscription only (docs/outcomes.md, "Subscribing").
resource outcomeSampleSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = {
  parent: outcomeTopic
  name: outcomeSampleSubscriptionName
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
    deadLetteringOnFilterEvaluationExceptions: true
    enableBatchedOperations: true
    // Nobody reads the sample: left idle it would fill the topic (its dead-letter queue keeps
    // expired outcomes) until publishing fails for every event. Deleted after a week unread; a
    // real subscriber's own subscription is watched by the topic-size alert (alerts.bicep).
    autoDeleteOnIdle: 'P7D'
  }
}

// Function identity: Data Receiver for the triggers, Data Sender to schedule delayed retries and
// leave dates on its own queue (and cancel them), on each queue. Deliberately not Data Owner (the
// "Manage" right): without it the Functions scale controller cannot read queue runtime properties
// and scales on the age of the first peeked message instead (see docs/deploy.md, "Scaling").
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

// Function identity: Data Sender on the outcome topic only, to publish outcomes. It never reads them.
resource functionSendOutcomes 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(outcomeTopic.id, functionPrincipalId, serviceBusDataSender)
  scope: outcomeTopic
  properties: {
    roleDefinitionId: serviceBusDataSender
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// HR publisher: send "employee leaving" events, nothing else.
resource hrSendEmployeeLeaving 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(hrPublisherPrincipalId) && !hrPublisherIsOpsSender) {
  name: guid(employeeLeavingQueue.id, hrPublisherPrincipalId, serviceBusDataSender)
  scope: employeeLeavingQueue
  properties: {
    roleDefinitionId: serviceBusDataSender
    principalId: hrPublisherPrincipalId
    principalType: hrPublisherPrincipalType
  }
}

// Ops: `offboard dlq list/replay` receive (peek, complete) from the dead-letter queues and send
// replays; `offboard enqueue` sends MFA waves. The dead-letter queue inherits its queue's roles, so
// a receiver can also take live events: opsQueueAccess narrows this (docs/deploy.md, "Operators").
resource opsReceiveEmployeeLeaving 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for ops in opsReceivers: {
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
  for ops in opsSenders: {
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
  for ops in opsReceivers: {
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
  for ops in opsSenders: {
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
output outcomeTopicName string = outcomeTopic.name
output outcomeSampleSubscriptionName string = outcomeSampleSubscription.name
// Host name only (no scheme, no port): what ServiceBusConnection__fullyQualifiedNamespace expects.
output fullyQualifiedNamespace string = split(split(split(namespace.properties.serviceBusEndpoint, '//')[1], '/')[0], ':')[0]
