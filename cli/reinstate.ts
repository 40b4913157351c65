import { randomUUID } from 'node:crypto';
import { ErrorCodes, isOffboardingError } from '../shared/core/errors';
import { parseEvent } from '../shared/core/events';
import { UsageError } from './exitCodes';

/**
 * The CloudEvents `source` of the reinstatements `offboard reinstate` runs. Each run is a new
 * event (a random id): reinstating is a deliberate act, never a resend.
 */
export const REINSTATE_SOURCE = 'offboard-cli/reinstate';

export interface ReinstateRequest {
  user: string;
  reason: string;
  /** The departure event this reinstatement undoes (kept in its record as a note). */
  event?: string;
}

/** The option each event field comes from, for usage errors in the operator's terms. */
const OPTION_OF_FIELD: Record<string, string> = {
  'data.user': '--user',
  'data.reason': '--reason',
  'data.departureEvent': '--event',
};

/**
 * The employee.reinstated event for an operator's request, checked against the event contract
 * here so a bad --user or --reason is a usage error naming the option, before anything runs.
 */
export function reinstatementEvent(request: ReinstateRequest, now = new Date()): object {
  if (request.reason.trim() === '') throw new UsageError('--reason must say why (it is audited).');
  const event = {
    specversion: '1.0',
    id: `reinstate-${randomUUID()}`,
    source: REINSTATE_SOURCE,
    type: 'employee.reinstated',
    time: now.toISOString(),
    datacontenttype: 'application/json',
    data: {
      user: request.user,
      reason: request.reason,
      ...(request.event === undefined ? {} : { departureEvent: request.event }),
    },
  };
  try {
    parseEvent(event, ['employee.reinstated']);
  } catch (error) {
    if (!isOffboardingError(error) || error.code !== ErrorCodes.InvalidEvent) throw error;
    throw new UsageError(
      error.message.replace(/data\.(user|reason|departureEvent)/g, (field) => {
        return OPTION_OF_FIELD[field] ?? field;
      }),
    );
  }
  return event;
}
