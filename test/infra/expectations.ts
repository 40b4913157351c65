/**
 * What the code's operations need from Azure RBAC, derived from what each principal does. The
 * settings, queues and Graph permissions come from the code itself (shared/); roles cannot, so they
 * are listed here with the operation that needs each one. Keep this list minimal: an extra role in
 * infra/ fails the tests just like a missing one.
 */

/** Built-in Azure role definition ids (the same in every tenant). */
export const ROLES = {
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0',
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39',
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6',
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb',
} as const;

/** Roles this app never needs; named in findings so a reviewer sees what was attempted. */
export const FORBIDDEN_ROLES: Readonly<Record<string, string>> = {
  '8e3af657-a8ff-443c-a75c-2fe8c4bcb635': 'Owner',
  'b24988ac-6180-42a0-ab88-20f7382dd24c': 'Contributor',
  '18d7d88d-d35e-4fb5-a5c3-7773c20a72d9': 'User Access Administrator',
  'f58310d9-a9f6-439a-9e8d-f62e7b41a168': 'Role Based Access Control Administrator',
  '090c5cfd-751d-490a-894a-3ce6f1109419': 'Azure Service Bus Data Owner',
  '17d1049b-9a84-46fb-8f53-869881c3d3ab': 'Storage Account Contributor',
  'ba92f5b4-2d11-453d-a403-e96b0029c9fe': 'Storage Blob Data Contributor',
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88': 'Storage Queue Data Contributor',
};

export const ROLE_NAMES: Readonly<Record<string, string>> = {
  [ROLES.serviceBusDataReceiver]: 'Azure Service Bus Data Receiver',
  [ROLES.serviceBusDataSender]: 'Azure Service Bus Data Sender',
  [ROLES.storageBlobDataOwner]: 'Storage Blob Data Owner',
  [ROLES.storageTableDataContributor]: 'Storage Table Data Contributor',
  [ROLES.storageTableDataReader]: 'Storage Table Data Reader',
  [ROLES.monitoringMetricsPublisher]: 'Monitoring Metrics Publisher',
  ...FORBIDDEN_ROLES,
};

export type PrincipalKind = 'function' | 'hrPublisher' | 'ops' | 'deployer';

export type ScopeKind = 'queue' | 'namespace' | 'storageAccount' | 'table' | 'appInsights';

export interface ExpectedRole {
  principal: PrincipalKind;
  role: string;
  /** Acceptable scopes (any one); `name` for queues and tables. */
  scopes: { kind: ScopeKind; name?: string }[];
  why: string;
}

export interface QueueNames {
  employeeLeaving: string;
  mfaEnabled: string;
}

export function expectedRoles(queues: QueueNames, auditTable: string): ExpectedRole[] {
  const both = [queues.employeeLeaving, queues.mfaEnabled];
  const auditScopes = [
    { kind: 'table' as const, name: auditTable },
    { kind: 'storageAccount' as const },
  ];
  return [
    ...both.flatMap((queue): ExpectedRole[] => [
      {
        principal: 'function',
        role: ROLES.serviceBusDataReceiver,
        scopes: [{ kind: 'queue', name: queue }],
        why: `the Service Bus trigger receives from ${queue}`,
      },
      {
        principal: 'function',
        role: ROLES.serviceBusDataSender,
        scopes: [{ kind: 'queue', name: queue }],
        why: `delayed retries and leave dates are scheduled (and cancelled) on ${queue}`,
      },
      {
        principal: 'ops',
        role: ROLES.serviceBusDataReceiver,
        scopes: [{ kind: 'queue', name: queue }],
        why: `offboard dlq list/replay reads and completes ${queue}/$DeadLetterQueue`,
      },
      {
        principal: 'ops',
        role: ROLES.serviceBusDataSender,
        scopes: [{ kind: 'queue', name: queue }],
        why: `offboard dlq replay and offboard enqueue send to ${queue}`,
      },
    ]),
    {
      principal: 'function',
      role: ROLES.storageTableDataContributor,
      scopes: [{ kind: 'storageAccount' }],
      why: 'audit records (and the Functions host diagnostic events table) on the storage account',
    },
    {
      principal: 'function',
      role: ROLES.storageBlobDataOwner,
      scopes: [{ kind: 'storageAccount' }],
      why: 'Functions host storage (keys, locks, its own containers) and the Flex deployment package',
    },
    {
      principal: 'function',
      role: ROLES.monitoringMetricsPublisher,
      scopes: [{ kind: 'appInsights' }],
      why: 'telemetry to Application Insights with local authentication disabled',
    },
    {
      principal: 'hrPublisher',
      role: ROLES.serviceBusDataSender,
      scopes: [{ kind: 'queue', name: queues.employeeLeaving }],
      why: 'the HR system publishes "employee leaving" events, and nothing else',
    },
    {
      principal: 'ops',
      role: ROLES.storageTableDataReader,
      scopes: auditScopes,
      why: 'offboard audit and offboard dlq list read the audit',
    },
  ];
}
