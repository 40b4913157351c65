import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import Long from 'long';
import { replayCopy } from '../../cli/deadLetters';

describe('replayCopy', () => {
  const deadLettered = {
    body: { id: 'evt-1' },
    messageId: 'retry-8-abc',
    sequenceNumber: Long.fromNumber(42),
    contentType: 'application/json',
    applicationProperties: {
      offboardingAttempt: 8,
      offboardingOriginalMessageId: 'hr-message-1',
      offboardingScheduledFor: '2026-12-01T09:00:00Z',
      custom: 'kept',
    },
  } as unknown as ServiceBusReceivedMessage;

  it('starts a new life: no attempt history, replay metadata, other properties kept', () => {
    const at = new Date('2026-11-27T12:00:00Z');
    const copy = replayCopy(deadLettered, 'ops-user', at);
    expect(copy.body).toEqual({ id: 'evt-1' });
    expect(copy.applicationProperties).toEqual({
      offboardingScheduledFor: '2026-12-01T09:00:00Z',
      custom: 'kept',
      offboardingReplayedBy: 'ops-user',
      offboardingReplayedAt: '2026-11-27T12:00:00.000Z',
      offboardingReplayOf: 'retry-8-abc',
    });
  });

  it('derives its MessageId from the dead-lettered message, so a re-run after a crash is a duplicate', () => {
    const copy = replayCopy(deadLettered, 'ops-user', new Date('2026-11-27T12:00:00Z'));
    expect(copy.messageId).toMatch(/^replay-42-[0-9a-f]{24}$/);
    expect(replayCopy(deadLettered, 'someone-else', new Date()).messageId).toBe(copy.messageId);
    const deadLetteredAgain = { ...deadLettered, sequenceNumber: Long.fromNumber(97) };
    expect(replayCopy(deadLetteredAgain, 'ops-user', new Date()).messageId).not.toBe(
      copy.messageId,
    );
    const otherMessage = { ...deadLettered, messageId: 'retry-8-abd' };
    expect(replayCopy(otherMessage, 'ops-user', new Date()).messageId).not.toBe(copy.messageId);
  });
});
