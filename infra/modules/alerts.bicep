// Alerts for the people who run the offboarding: dead letters, failing invocations, a tripped
// guardrail, a delayed departure and, if wanted, an HR feed that went silent. All go to one action
// group. test/infra checks each definition.
param actionGroupName string
param tags object

@description('E-mail receiver; empty for none (add receivers in the portal or set ALERT_EMAIL).')
param alertEmail string

param serviceBusNamespaceName string

@description('Queues whose dead-letter queue is watched.')
param queueNames array

@description('Queue watched by the "no events" alert.')
param noEventsQueueName string

@description('Function triggered by that queue (its invocations are counted).')
param noEventsFunctionName string

@description('Hours without an incoming event before alerting; 0 disables the alert.')
@allowed([0, 1, 6, 12, 24])
param noEventsAlertHours int

@description('The outcome topic: alert before it fills up (publishing outcomes then fails).')
param outcomeTopicName string

param applicationInsightsName string

@description('Log Analytics workspace of Application Insights: the "no events" log alert queries it.')
param workspaceId string

@description('Function app name (AppRoleName in the telemetry).')
param functionAppName string

@description('Region of the log search alert.')
param location string

var emailReceivers = empty(alertEmail) ? [] : [{ name: 'ops-email', emailAddress: alertEmail, useCommonAlertSchema: true }]

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'offboarding'
    enabled: true
    emailReceivers: emailReceivers
  }
}

// Anything in a dead-letter queue is an event that was not carried out: a permanent failure
// (audited with its reason) or retries exhausted. Stays fired until the queue is drained or replayed.
resource deadLetterAlerts 'Microsoft.Insights/metricAlerts@2018-03-01' = [
  for queueName in queueNames: {
    name: 'dead-letters-${queueName}'
    location: 'global'
    tags: tags
    properties: {
      description: 'Messages in the dead-letter queue of ${queueName}. Inspect with `offboard dlq list --queue ${queueName}`.'
      severity: 1
      enabled: true
      scopes: [
        namespace.id
      ]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT5M'
      autoMitigate: true
      criteria: {
        'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
        allOf: [
          {
            criterionType: 'StaticThresholdCriterion'
            name: 'DeadLetteredMessages'
            metricNamespace: 'Microsoft.ServiceBus/namespaces'
            metricName: 'DeadletteredMessages'
            dimensions: [
              {
                name: 'EntityName'
                operator: 'Include'
                values: [
                  queueName
                ]
              }
            ]
            operator: 'GreaterThan'
            threshold: 0
            timeAggregation: 'Maximum'
          }
        ]
      }
      actions: [
        {
          actionGroupId: actionGroup.id
        }
      ]
    }
  }
]

// The outcome topic counts every subscription's messages (their dead-letter queues included)
// against its 1 GB: a subscriber that stopped reading fills it, and then publishing outcomes fails
// for every event (departures are still carried out: the record is written first, docs/outcomes.md).
// Fires at 80 % of the topic's size.
resource outcomeTopicSizeAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'outcome-topic-filling'
  location: 'global'
  tags: tags
  properties: {
    description: 'The outcome topic ${outcomeTopicName} is over 80 % full: a subscriber stopped reading. Drain or delete its subscription.'
    severity: 2
    enabled: true
    scopes: [
      namespace.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'OutcomeTopicSize'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'Size'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                outcomeTopicName
              ]
            }
          ]
          operator: 'GreaterThan'
          // 80 % of maxSizeInMegabytes (1024) in servicebus.bicep, in bytes.
          threshold: 858993459
          timeAggregation: 'Maximum'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

// A failed invocation is a permanent failure on its way to the dead-letter queue, or a host or
// configuration problem (transient failures are rescheduled and complete successfully).
resource functionFailuresAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'function-failures'
  location: 'global'
  tags: tags
  properties: {
    description: 'Failed offboarding invocations. Query OffboardingFailures in Log Analytics.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'FailedRequests'
          metricNamespace: 'microsoft.insights/components'
          metricName: 'requests/failed'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Count'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

// "The HR feed went silent": no first delivery of an HR-sent message on the queue for N hours.
// Not a Service Bus metric alert: IncomingMessages also counts the app's own scheduled retries and
// leave dates (which would hide a silent feed), and an idle entity emits no metric points at all, so
// a "less than 1" metric alert may never evaluate. A log search alert counts rows of the Functions
// host's "Trigger Details" trace (one per invocation, with MessageId and DeliveryCount) and fires
// on zero rows; MessageIds the app and the ops CLI make (contract.appMessageIdPrefixes) are excluded.
var appMessageIdPrefixes = loadJsonContent('../contract.json').appMessageIdPrefixes
var noEventsQuery = join([
  'AppTraces'
  '| where AppRoleName =~ "${functionAppName}" and OperationName == "${noEventsFunctionName}"'
  '| where Message startswith "Trigger Details: MessageId: "'
  '| parse Message with "Trigger Details: MessageId: " MessageId ", " * "DeliveryCount: " DeliveryCount:int "," *'
  '| where DeliveryCount == 1'
  '| where not(${join(map(appMessageIdPrefixes, prefix => 'MessageId startswith "${prefix}"'), ' or ')})'
], '\n')

resource noEventsAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = if (noEventsAlertHours > 0) {
  name: 'no-events-${noEventsQueueName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'No HR events on ${noEventsQueueName}'
    description: 'The HR publisher sent no event to ${noEventsQueueName} for ${noEventsAlertHours} hours (or the function app is not receiving): check the HR integration and the app.'
    severity: 3
    enabled: true
    scopes: [
      workspaceId
    ]
    // A new workspace has no AppTraces table until the first trace arrives: without this the rule
    // fails to create ("Failed to resolve table"). The query is still checked when it runs.
    skipQueryValidation: true
    evaluationFrequency: 'PT1H'
    windowSize: 'PT${noEventsAlertHours}H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: noEventsQuery
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// The blast-radius guardrail tripped: a feed sent more departures (or MFA events) than its limit
// per window, and further ones are held until an operator releases or discards them. The function
// logs contract.logs.guardrailTripped once per trip.
var guardrailTrippedMessage = loadJsonContent('../contract.json').logs.guardrailTripped
var guardrailQuery = join([
  'AppTraces'
  '| where AppRoleName =~ "${functionAppName}"'
  '| where Message startswith "${guardrailTrippedMessage}"'
], '\n')

resource guardrailAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'guardrail-tripped'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Offboarding guardrail tripped: events held'
    description: 'More departures or MFA events than the guardrail allows per window: further events are held, nothing is written for them. Run `offboard guardrail status`, then release or discard.'
    severity: 1
    enabled: true
    scopes: [
      workspaceId
    ]
    // A new workspace has no AppTraces table until the first trace arrives: without this the rule
    // fails to create ("Failed to resolve table"). The query is still checked when it runs.
    skipQueryValidation: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: guardrailQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// A departure is past its due time by DEPARTURE_OVERDUE_MINUTES and still being retried: Graph
// throttles or is down, and the leaver can still sign in. The function logs
// contract.logs.departureDelayed once per departure, on the run that marks it delayed; the
// departure keeps retrying and ends succeeded, or failed after DEPARTURE_GIVE_UP_AFTER_MINUTES.
var departureDelayedMessage = loadJsonContent('../contract.json').logs.departureDelayed
var departureDelayedQuery = join([
  'AppTraces'
  '| where AppRoleName =~ "${functionAppName}"'
  '| where Message startswith "${departureDelayedMessage}"'
], '\n')

resource departureDelayedAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'departure-delayed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Offboarding departure delayed: still retrying past its due time'
    description: 'A departure is past its due time and still not done: Graph is throttling or unavailable, and the leaver may still sign in. It keeps retrying until DEPARTURE_GIVE_UP_AFTER_MINUTES. Query OffboardingLogs for DepartureDelayed, check Graph service health, then `offboard audit --event ID`.'
    severity: 2
    enabled: true
    scopes: [
      workspaceId
    ]
    // A new workspace has no AppTraces table until the first trace arrives: without this the rule
    // fails to create ("Failed to resolve table"). The query is still checked when it runs.
    skipQueryValidation: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    // Each delayed departure is logged once: every line is an alert of its own.
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: departureDelayedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// The sign-in watch (SIGNIN_WATCH_ENABLED) found a departed user who signed in after the access
// cut-off. The function logs contract.logs.signInAfterCutoff once per departure, on the check that
// records it. Without the watch nothing logs the line and the alert never fires.
var signInAfterCutoffMessage = loadJsonContent('../contract.json').logs.signInAfterCutoff
var signInAfterCutoffQuery = join([
  'AppTraces'
  '| where AppRoleName =~ "${functionAppName}"'
  '| where Message startswith "${signInAfterCutoffMessage}"'
], '\n')

resource signInAfterCutoffAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'signin-after-cutoff'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Offboarding: a departed user signed in after the access cut-off'
    description: 'The sign-in watch found a successful sign-in of a departed user after the cut-off the audit promised. Treat it as an incident: `offboard audit --event ID` shows the sign-ins (app, time, IP, client, CAE), then disable the account by hand (on-premises AD for a synced user) and revoke again.'
    severity: 1
    enabled: true
    scopes: [
      workspaceId
    ]
    skipQueryValidation: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    // Each incident is logged once: every line is an alert of its own.
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: signInAfterCutoffQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
