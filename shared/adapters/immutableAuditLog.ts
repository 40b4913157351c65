import type { TokenCredential } from '@azure/identity';
import type { AppConfig } from '../app/config';
import type { FinalRecordSink } from '../core/ports';

/**
 * The immutable audit log: every final record appended to an append blob under a time-based
 * immutability policy. Being built (issue 10): until then no sink is returned.
 */
export function createImmutableAuditSink(
  _config: AppConfig,
  _credential: TokenCredential,
): FinalRecordSink | undefined {
  return undefined;
}
