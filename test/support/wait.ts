import { latestRecordFor } from '../../shared/core/auditRecords';
import type { AuditLog, AuditRecord } from '../../shared/core/ports';

/** Polls until `check` returns a value other than undefined/false, or fails with `what`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Waits until every event id has an unclaimed record for which `done` holds, and returns them in
 * the order of the ids.
 */
export function recordsSettled(
  audit: AuditLog,
  ids: string[],
  done: (record: AuditRecord) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<AuditRecord[]> {
  return waitFor(
    what,
    async () => {
      const records = await Promise.all(ids.map((id) => latestRecordFor(audit, id)));
      return records.every((r) => r !== undefined && r.claimedBy === undefined && done(r))
        ? (records as AuditRecord[])
        : undefined;
    },
    timeoutMs,
  );
}
