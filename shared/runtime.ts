import {
  AzureCliCredential,
  AzureDeveloperCliCredential,
  ChainedTokenCredential,
  ManagedIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import { TableAuditLog, createTableClient } from './audit/tableAuditLog';
import { loadConfig, type AppConfig } from './config';
import { GraphDirectory } from './graph/graphDirectory';
import { OffboardingService } from './offboard';
import type { AuditLog, Directory } from './ports';

/** Everything a function or the command line needs, built once per process from the settings. */
export interface Runtime {
  config: AppConfig;
  credential: TokenCredential;
  directory: Directory;
  audit: AuditLog;
  offboarding: OffboardingService;
}

/**
 * The app's identity. In Azure always the managed identity (user-assigned when AZURE_CLIENT_ID is
 * set); a developer's own sign-in only when GRAPH_CREDENTIAL=developer says so explicitly.
 */
export function createCredential(config: AppConfig): TokenCredential {
  if (config.graph.credential === 'developer') {
    return new ChainedTokenCredential(new AzureCliCredential(), new AzureDeveloperCliCredential());
  }
  const clientId = config.graph.managedIdentityClientId;
  return clientId === undefined ? new ManagedIdentityCredential() : new ManagedIdentityCredential({ clientId });
}

export function createRuntime(config: AppConfig = loadConfig()): Runtime {
  const credential = createCredential(config);
  const directory = new GraphDirectory({ config: config.graph, credential });
  const audit = new TableAuditLog(createTableClient(config.audit, credential));
  const offboarding = new OffboardingService({ directory, audit, policy: config.policy });
  return { config, credential, directory, audit, offboarding };
}

let shared: Runtime | undefined;

/** The process-wide runtime: settings are validated on first use and the SDK clients reused. */
export function getRuntime(): Runtime {
  shared ??= createRuntime();
  return shared;
}
