import type { AuditLog, AuditRecord } from '../shared/core/ports';

/**
 * The audit reads the command line makes, in one place: the ops commands only ever read the
 * audit, and the shape of the audit port is the core's to change.
 */
export async function recordsOfEvent(audit: AuditLog, eventId: string): Promise<AuditRecord[]> {
  // An id may stand for several records: other sources, content reusing the id, invalid messages.
  const records = await audit.findByEventId(eventId);
  return records.sort((a, b) => a.lastAttemptAt.localeCompare(b.lastAttemptAt));
}

export async function recordsOfUser(audit: AuditLog, userIdOrUpn: string): Promise<AuditRecord[]> {
  return (await audit.findByUser(userIdOrUpn)).map((stored) => stored.record);
}

/** "Code: message" of the event's last audited failure; an unreadable audit only loses the hint. */
export async function lastAuditedError(
  audit: AuditLog,
  eventId: string,
): Promise<string | undefined> {
  const records = await recordsOfEvent(audit, eventId).catch(() => []);
  const failed = records.filter((r) => Boolean(r.errorCode));
  const last = failed.sort((a, b) => a.lastAttemptAt.localeCompare(b.lastAttemptAt)).at(-1);
  return last === undefined ? undefined : `${last.errorCode}: ${last.errorMessage ?? ''}`;
}
