// The figures of `offboard report` as charts over time (docs/report.md), from the function logs in
// the Log Analytics workspace. The function handler writes one line per run ("Event processed",
// "Event failed transiently; retry scheduled", "Event waits ...", "Event failed permanently ...")
// with a summary printed as `outcome: 'succeeded', ... errorCode: 'Throttled'`: the queries parse
// that. Traces are sampled (host.json), so counts are sum(ItemCount), not count().
param name string
param location string
param tags object

@description('Log Analytics workspace of Application Insights (the workbook queries it and is listed under it).')
param workspaceId string

@description('Function app name (AppRoleName in the telemetry).')
param functionAppName string

var app = '| where AppRoleName =~ "${functionAppName}"'
// Every line the handler writes for a run starts with "Event " and carries the summary.
var runs = join([
  'AppTraces'
  app
  '| where Message startswith "Event " and Message contains "outcome: \'"'
], '\n')

var outcomesQuery = join([
  runs
  '| extend outcome = extract(@"outcome: \'([^\']+)\'", 1, Message)'
  '| summarize runs = sum(ItemCount) by bin(TimeGenerated, 1d), outcome'
  '| render columnchart'
], '\n')

// Event time to verified revocation: the handler logs revocationLatencySeconds when it knows both
// times (docs/report.md); the processing time per invocation is below it.
var revocationLatencyQuery = join([
  runs
  '| extend latency = todouble(extract(@"revocationLatencySeconds: ([0-9.]+)", 1, Message))'
  '| where isnotnull(latency)'
  '| summarize p50 = percentile(latency, 50), p95 = percentile(latency, 95), max = max(latency) by bin(TimeGenerated, 1h)'
  '| render timechart'
], '\n')

var durationQuery = join([
  'AppRequests'
  app
  '| summarize p50 = percentile(DurationMs, 50) / 1000, p95 = percentile(DurationMs, 95) / 1000, max = max(DurationMs) / 1000 by bin(TimeGenerated, 1h)'
  '| render timechart'
], '\n')

var throttlingQuery = join([
  runs
  '| extend errorCode = extract(@"errorCode: \'([^\']+)\'", 1, Message)'
  '| where errorCode in ("Throttled", "Deferred")'
  '| summarize runs = sum(ItemCount) by bin(TimeGenerated, 1h), errorCode'
  '| render timechart'
], '\n')

var deadLettersQuery = join([
  runs
  '| where Message startswith "Event failed permanently"'
  '| extend errorCode = extract(@"errorCode: \'([^\']+)\'", 1, Message)'
  '| summarize events = sum(ItemCount) by bin(TimeGenerated, 1d), errorCode'
  '| render columnchart'
], '\n')

// Departures announced delayed (the function's DepartureDelayed line, the one the "departure delayed"
// alert counts), each with the outcome of its latest run: `delayed` while it still retries, then
// `succeeded` or `failed`.
var departureDelayedMessage = loadJsonContent('../contract.json').logs.departureDelayed
var eventIdOf = 'extract(@"eventId: \'([^\']+)\'", 1, Message)'
var delayedDeparturesQuery = join([
  'AppTraces'
  app
  '| where Message startswith "${departureDelayedMessage}"'
  '| extend eventId = ${eventIdOf}, objectId = extract(@"objectId: \'([^\']+)\'", 1, Message), dueAt = extract(@"dueAt: \'([^\']+)\'", 1, Message), errorCode = extract(@"errorCode: \'([^\']+)\'", 1, Message)'
  '| join kind=leftouter ('
  runs
  '| extend eventId = ${eventIdOf}, outcome = extract(@"outcome: \'([^\']+)\'", 1, Message)'
  '| summarize arg_max(TimeGenerated, outcome) by eventId'
  ') on eventId'
  '| project delayedAt = TimeGenerated, eventId, objectId, dueAt, errorCode, latestOutcome = outcome'
  '| order by delayedAt desc'
], '\n')

// The sign-in watch (optional, SIGNIN_WATCH_ENABLED): each check the handler recorded, by verdict
// (signin-after-cutoff, no-sign-in, failed-attempts-only, unavailable). A check logs
// "Sign-in watch check recorded", or the SignInAfterCutoff line when it found the incident first;
// repeats of a check (duplicate: true) are left out.
var signInAfterCutoffMessage = loadJsonContent('../contract.json').logs.signInAfterCutoff
var signInWatchQuery = join([
  'AppTraces'
  app
  '| where Message startswith "Sign-in watch check recorded" or Message startswith "${signInAfterCutoffMessage}"'
  '| where Message !contains "duplicate: true"'
  '| extend verdict = extract(@"verdict: \'([^\']+)\'", 1, Message)'
  '| summarize checks = sum(ItemCount) by bin(TimeGenerated, 1d), verdict'
  '| render columnchart'
], '\n')

// One chart of the workbook: a log query over the workspace in the chosen time range.
func chart(title string, query string) object => {
  type: 3
  content: {
    version: 'KqlItem/1.0'
    title: title
    query: query
    size: 0
    queryType: 0
    resourceType: 'microsoft.operationalinsights/workspaces'
    timeContextFromParameter: 'TimeRange'
    timeContext: { durationMs: 604800000 }
  }
  name: title
}

var content = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      content: {
        json: '## Offboarding\nThe figures of `offboard report` over time, from the function logs. The audit table stays the truth: `offboard report --since 7d` counts events, these charts count runs (a retried event once per attempt). Outcomes include `delayed` (a departure past its due time, still retrying: its runs count as delayed until it ends) and `superseded` (a later HR intent of the person came first: nothing written). The sign-in watch chart counts checks after departures: `signin-after-cutoff` is a departed user who signed in after the cut-off. Guardrail trips: the guardrail is not enabled.'
      }
      name: 'intro'
    }
    {
      type: 9
      content: {
        version: 'KqlParameterItem/1.0'
        parameters: [
          {
            id: guid('offboarding-workbook', 'TimeRange')
            version: 'KqlParameterItem/1.0'
            name: 'TimeRange'
            label: 'Time range'
            type: 4
            isRequired: true
            value: { durationMs: 604800000 }
            typeSettings: {
              selectableValues: [
                { durationMs: 86400000 }
                { durationMs: 604800000 }
                { durationMs: 2592000000 }
                { durationMs: 7776000000 }
              ]
            }
          }
        ]
        queryType: 0
        resourceType: 'microsoft.operationalinsights/workspaces'
      }
      name: 'parameters'
    }
    chart('Runs per day by outcome', outcomesQuery)
    chart('Event time to verified revocation (s): p50, p95, max', revocationLatencyQuery)
    chart('Processing time per invocation (s): p50, p95, max', durationQuery)
    chart('Graph 429s (Throttled) and waits for the write budget (Deferred), runs per hour', throttlingQuery)
    chart('Events sent to the dead-letter queue per day, by error code', deadLettersQuery)
    chart('Departures delayed past their due time (latest outcome: delayed while still retrying)', delayedDeparturesQuery)
    chart('Sign-in watch checks per day by verdict (signin-after-cutoff is an incident; only with SIGNIN_WATCH_ENABLED)', signInWatchQuery)
  ]
  isLocked: false
  fallbackResourceIds: [
    workspaceId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID: stable per resource group, so a redeploy updates it.
  name: guid(resourceGroup().id, name)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: name
    category: 'workbook'
    sourceId: workspaceId
    serializedData: string(content)
  }
}

output workbookId string = workbook.id
