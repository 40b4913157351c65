/**
 * The outcome topic in infra/ (issue 10, item 3): the topic the app publishes to is the one it is
 * configured with, has duplicate detection (the app's MessageId is the event id), a sample
 * subscription exists, and the app's only right on it is Data Sender on that topic. Each kind of
 * drift, injected into a copy of the text, is reported (the checks cannot pass vacuously).
 */
import { join } from 'node:path';
import { buildInfraContract } from '../../dev/infra-contract';
import {
  declarations,
  inject,
  loadInfraFiles,
  properties,
  stripComments,
  type InfraFiles,
} from './bicepText';
import { FUNCTION_APP, MAIN, SERVICE_BUS } from './checks';

const ROOT = join(__dirname, '..', '..');
const files = loadInfraFiles(ROOT);
const contract = buildInfraContract();

const TOPIC = 'Microsoft.ServiceBus/namespaces/topics';
const SUBSCRIPTION = 'Microsoft.ServiceBus/namespaces/topics/subscriptions';
const ROLE = 'Microsoft.Authorization/roleAssignments';

/** ISO 8601 duration of days/hours/minutes as ms (enough for the values used here). */
function durationMs(text: string | undefined): number | undefined {
  const m = /^'P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?'$/.exec(text ?? '');
  if (m === null) return undefined;
  const [, d, h, min] = m.map((x) => Number(x ?? 0));
  return (((d ?? 0) * 24 + (h ?? 0)) * 60 + (min ?? 0)) * 60_000;
}

function checkOutcomeTopic(f: InfraFiles): string[] {
  const findings: string[] = [];
  const all = declarations(f);
  const topics = all.filter((d) => d.type === TOPIC);
  const topic = topics[0];
  if (topics.length !== 1 || topic === undefined || topic.file !== SERVICE_BUS)
    return [`expected one topic in ${SERVICE_BUS}, found ${topics.length}`];
  const top = properties(topic.body);
  const props = properties(/properties: (\{[^]*?\n\s*\})/.exec(topic.body)?.[1] ?? '{}');
  if (top.name !== 'outcomeTopicName')
    findings.push(`the topic is named ${top.name}, not outcomeTopicName`);
  if (top.parent !== 'namespace') findings.push('the topic is not in the namespace');
  if (props.requiresDuplicateDetection !== 'true')
    findings.push('the topic must have duplicate detection (the MessageId is the event id)');
  const window = durationMs(props.duplicateDetectionHistoryTimeWindow);
  // Service Bus allows 20 s to 7 days; a redelivery after a failed publish comes within minutes.
  if (window === undefined || window < 10 * 60_000 || window > 7 * 86_400_000)
    findings.push('duplicateDetectionHistoryTimeWindow must be between 10 minutes and 7 days');
  const ttl = durationMs(props.defaultMessageTimeToLive);
  if (ttl === undefined || ttl < 86_400_000 || ttl > 90 * 86_400_000)
    findings.push('defaultMessageTimeToLive must be set, between 1 and 90 days');

  const subscriptions = all.filter((d) => d.type === SUBSCRIPTION);
  if (subscriptions.length === 0) findings.push('no sample subscription on the outcome topic');
  for (const s of subscriptions) {
    const sub = properties(/properties: (\{[^]*?\n\s*\})/.exec(s.body)?.[1] ?? '{}');
    if (properties(s.body).parent !== topic.symbol)
      findings.push(`subscription ${s.symbol} is not on the outcome topic`);
    if (sub.deadLetteringOnMessageExpiration !== 'true')
      findings.push(
        `subscription ${s.symbol} must dead-letter expired outcomes (none lost silently)`,
      );
  }

  // Least privilege: the function may send to this topic, and nothing else on it or the namespace.
  const roles = all.filter((d) => d.type === ROLE && d.file === SERVICE_BUS);
  const onTopic = roles.filter((r) => properties(r.body).scope === topic.symbol);
  const send = onTopic.find((r) => /principalId: functionPrincipalId\b/.test(r.body));
  if (send === undefined) findings.push('the function identity has no role on the outcome topic');
  else {
    const inner = properties(/properties: (\{[^]*?\n\s*\})/.exec(send.body)?.[1] ?? '{}');
    if (inner.roleDefinitionId !== 'serviceBusDataSender')
      findings.push(
        `the function must have Data Sender on the topic, has ${inner.roleDefinitionId}`,
      );
    if (
      properties(send.body).name !==
      `guid(${topic.symbol}.id, functionPrincipalId, serviceBusDataSender)`
    )
      findings.push(
        `${send.symbol} name must be guid(${topic.symbol}.id, functionPrincipalId, serviceBusDataSender)`,
      );
  }
  for (const r of onTopic)
    if (r !== send) findings.push(`unexpected role assignment ${r.symbol} on the outcome topic`);
  for (const r of roles)
    if (properties(r.body).scope === undefined || properties(r.body).scope === 'namespace')
      findings.push(`${r.symbol} is scoped to the namespace: scope it to a queue or the topic`);
  if (
    !/^var serviceBusDataSender = subscriptionResourceId\('Microsoft\.Authorization\/roleDefinitions', contract\.roles\.serviceBusDataSender\)$/m.test(
      stripComments(f[SERVICE_BUS] ?? ''),
    )
  )
    findings.push('serviceBusDataSender must come from contract.roles');

  // The app publishes to the topic infra creates: one name, from the OUTCOME_TOPIC default.
  const main = stripComments(f[MAIN] ?? '');
  if (!main.includes('var outcomeTopicName = contract.appSettings.defaults.OUTCOME_TOPIC'))
    findings.push('main.bicep must take the topic name from the OUTCOME_TOPIC default');
  for (const module of ['serviceBus', 'functionApp']) {
    const d = all.find((x) => x.file === MAIN && x.symbol === module);
    if (d === undefined || !/\boutcomeTopicName: outcomeTopicName\b/.test(d.body))
      findings.push(`main.bicep must pass outcomeTopicName to module ${module}`);
  }
  if (!/^\s*OUTCOME_TOPIC: outcomeTopicName$/m.test(stripComments(f[FUNCTION_APP] ?? '')))
    findings.push('the app setting OUTCOME_TOPIC must be outcomeTopicName');
  return findings;
}

describe('the outcome topic in infra', () => {
  test('no finding', () => {
    expect(checkOutcomeTopic(files)).toEqual([]);
  });

  test('the app setting it reads is one the contract knows, with the default infra uses', () => {
    expect(contract.appSettings.requiredInAzure).toContain('OUTCOME_TOPIC');
    expect(contract.appSettings.defaults.OUTCOME_TOPIC).toBe('offboarding-outcomes');
  });

  /** [what drifted, file, from, to, a fragment of the expected finding] */
  // prettier-ignore
  const DRIFTS: [string, string, string | RegExp, string, string][] = [
    ['duplicate detection off', SERVICE_BUS, 'requiresDuplicateDetection: true', 'requiresDuplicateDetection: false', 'duplicate detection'],
    ['a window too short to catch a redelivery', SERVICE_BUS, "duplicateDetectionHistoryTimeWindow: 'P1D'", "duplicateDetectionHistoryTimeWindow: 'PT1M'", 'between 10 minutes and 7 days'],
    ['no TTL', SERVICE_BUS, /\n\s*defaultMessageTimeToLive: 'P14D'/, '', 'defaultMessageTimeToLive must be set'],
    ['the sample subscription removed', SERVICE_BUS, /resource outcomeSampleSubscription [^]*?\n\}\n/, '', 'no sample subscription'],
    ['expired outcomes dropped', SERVICE_BUS, /(resource outcomeSampleSubscription[^]*?deadLetteringOnMessageExpiration: )true/, '$1false', 'must dead-letter expired outcomes'],
    ['Sender on the namespace', SERVICE_BUS, /(resource functionSendOutcomes[^]*?scope: )outcomeTopic/, '$1namespace', 'no role on the outcome topic'],
    ['Receiver instead of Sender', SERVICE_BUS, /(resource functionSendOutcomes[^]*?roleDefinitionId: )serviceBusDataSender/, '$1serviceBusDataReceiver', 'must have Data Sender on the topic'],
    ['a second role on the topic', SERVICE_BUS, 'output name string = namespace.name', "resource outcomeReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n  name: guid(outcomeTopic.id, functionPrincipalId, serviceBusDataReceiver)\n  scope: outcomeTopic\n  properties: {\n    roleDefinitionId: serviceBusDataReceiver\n    principalId: hrPublisherPrincipalId\n  }\n}\noutput name string = namespace.name", 'unexpected role assignment outcomeReader'],
    ['a topic named by hand', SERVICE_BUS, /(resource outcomeTopic [^]*?name: )outcomeTopicName/, "$1'outcomes'", 'not outcomeTopicName'],
    ['the app setting not the topic', FUNCTION_APP, 'OUTCOME_TOPIC: outcomeTopicName', "OUTCOME_TOPIC: 'outcomes'", 'OUTCOME_TOPIC must be outcomeTopicName'],
  ];

  test.each(DRIFTS)('%s is reported', (_what, path, from, to, expected) => {
    const drifted = inject(files, path, from, to);
    expect(checkOutcomeTopic(drifted).join('\n')).toContain(expected);
  });
});
