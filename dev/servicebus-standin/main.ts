/**
 * Runs the Service Bus stand-in until SIGINT/SIGTERM:
 *
 *   node dist/dev/servicebus-standin/main.js --port 5672 --queue employee-leaving \
 *     --queue mfa-enabled [--topic offboarding-outcomes:hr-itsm,siem] [--max-delivery-count N] \
 *     [--lock-duration-ms N] [--duplicate-detection-window-ms N] [--host 127.0.0.1]
 *
 * Queue and subscription settings apply to every queue and subscription; duplicate detection to
 * every queue and topic.
 *
 * Prints the connection string on stdout.
 */
import { startServiceBusStandIn } from './index';
import type { QueueOptions, TopicOptions } from './index';

interface CliOptions {
  port: number;
  host: string;
  queues: string[];
  /** `topic:sub1,sub2` */
  topics: { name: string; subscriptions: string[] }[];
  maxDeliveryCount?: number;
  lockDurationMs?: number;
  duplicateDetectionWindowMs?: number;
}

function parseArgs(argv: string[]): CliOptions {
  const options: CliOptions = { port: 5672, host: '127.0.0.1', queues: [], topics: [] };
  const number = (flag: string, value: string | undefined): number => {
    const parsed = Number(value);
    if (value === undefined || !Number.isInteger(parsed) || parsed < 0) {
      throw new Error(`${flag} needs a non-negative integer`);
    }
    return parsed;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    switch (flag) {
      case '--port':
        options.port = number(flag, value);
        i++;
        break;
      case '--host':
        if (!value) throw new Error('--host needs a value');
        options.host = value;
        i++;
        break;
      case '--queue':
        if (!value) throw new Error('--queue needs a name');
        options.queues.push(value);
        i++;
        break;
      case '--topic': {
        const [name, subscriptions] = (value ?? '').split(':');
        if (!name || !subscriptions)
          throw new Error('--topic needs NAME:SUBSCRIPTION[,SUBSCRIPTION]');
        options.topics.push({ name, subscriptions: subscriptions.split(',').filter(Boolean) });
        i++;
        break;
      }
      case '--max-delivery-count':
        options.maxDeliveryCount = number(flag, value);
        i++;
        break;
      case '--lock-duration-ms':
        options.lockDurationMs = number(flag, value);
        i++;
        break;
      case '--duplicate-detection-window-ms':
        options.duplicateDetectionWindowMs = number(flag, value);
        i++;
        break;
      default:
        throw new Error(`Unknown argument '${flag ?? ''}'`);
    }
  }
  if (options.queues.length === 0) throw new Error('Give at least one --queue NAME');
  return options;
}

async function main(): Promise<void> {
  const cli = parseArgs(process.argv.slice(2));
  const receiveSide = (name: string): QueueOptions => ({
    name,
    ...(cli.maxDeliveryCount === undefined ? {} : { maxDeliveryCount: cli.maxDeliveryCount }),
    ...(cli.lockDurationMs === undefined ? {} : { lockDurationMs: cli.lockDurationMs }),
  });
  const dedup =
    cli.duplicateDetectionWindowMs === undefined
      ? {}
      : { duplicateDetectionWindowMs: cli.duplicateDetectionWindowMs };
  const queues: QueueOptions[] = cli.queues.map((name) => ({ ...receiveSide(name), ...dedup }));
  const topics: TopicOptions[] = cli.topics.map((topic) => ({
    name: topic.name,
    ...dedup,
    subscriptions: topic.subscriptions.map(receiveSide),
  }));
  const standIn = await startServiceBusStandIn({ port: cli.port, host: cli.host, queues, topics });
  process.stdout.write(`${standIn.connectionString}\n`);
  process.stderr.write(
    `Service Bus stand-in listening on ${cli.host}:${standIn.port} ` +
      `(queues: ${cli.queues.join(', ')}; topics: ${cli.topics.map((t) => t.name).join(', ') || 'none'})\n`,
  );
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    standIn.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
