import type { Io } from './io';
import type { RuntimeFactory } from './commands';
import { ExitCodes } from './exitCodes';

export interface AuditVerifyOptions {
  since?: Date;
  json?: boolean;
}

/** `offboard audit verify`: being built (issue 10, item 6). */
export async function auditVerifyCommand(
  _options: AuditVerifyOptions,
  io: Io,
  _runtime: RuntimeFactory,
): Promise<number> {
  io.stderr('audit verify: not built yet\n');
  return Promise.resolve(ExitCodes.failed);
}
