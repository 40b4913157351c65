import { app } from '@azure/functions';
import { createQueueHandler } from '../shared/functionHandler';
import { getRuntime } from '../shared/runtime';

// Validate settings at start-up: a missing setting stops the app from loading (and says which).
getRuntime();

app.serviceBusQueue('mfaEnabled', {
  connection: 'ServiceBusConnection',
  queueName: '%MFA_ENABLED_QUEUE%',
  handler: createQueueHandler(getRuntime, 'mfaEnabled', ['mfa.enabled']),
});
