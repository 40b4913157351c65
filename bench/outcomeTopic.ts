import { SETTINGS } from '../shared/app/config';

/**
 * The outcome topic's name as shipped (OUTCOME_TOPIC's default, the topic infra deploys): every
 * final record is published there, so the bench's Service Bus stand-ins have it.
 */
export const OUTCOME_TOPIC = (() => {
  const spec = SETTINGS.find((s) => s.name === 'OUTCOME_TOPIC');
  if (spec === undefined || !('default' in spec)) throw new Error('OUTCOME_TOPIC has no default');
  return spec.default;
})();
