import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { replayCopy } from '../../cli/ops';

describe('replayCopy', () => {
  const deadLettered = {
    body: { id: 'evt-1' },
    messageId: 'retry-8-abc',
    contentType: 'application/json',
    applicationProperties: {
      offboardingAttempt: 8,
      offboardingOriginalMessageId: 'hr-message-1',
      offboardingScheduledFor: '2026-12-01T09:00:00Z',
      custom: 'kept',
    },
  } as unknown as ServiceBusReceivedMessage;

  it('starts a new life: new id, no attempt history, replay metadata, other properties kept', () => {
    const at = new Date('2026-11-27T12:00:00Z');
    const copy = replayCopy(deadLettered, 'ops-user', at);
    expect(copy.messageId).toMatch(/^replay-[0-9a-f-]{36}$/);
    expect(copy.body).toEqual({ id: 'evt-1' });
    expect(copy.applicationProperties).toEqual({
      offboardingScheduledFor: '2026-12-01T09:00:00Z',
      custom: 'kept',
      offboardingReplayedBy: 'ops-user',
      offboardingReplayedAt: '2026-11-27T12:00:00.000Z',
      offboardingReplayOf: 'retry-8-abc',
    });
    expect(replayCopy(deadLettered, 'ops-user', at).messageId).not.toBe(copy.messageId);
  });
});
