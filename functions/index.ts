import { app } from '@azure/functions';
import { registerRoutes, underFunctionsHost } from '../shared/adapters/functionHandler';
import { getRuntime } from '../shared/app/runtime';

// Validate settings at start-up: a missing or malformed setting stops the app from loading (and
// says which), while the messages wait safely in the queues.
getRuntime();

registerRoutes((name, options) => app.serviceBusQueue(name, options), getRuntime);

// Once registered, ready what the first final record needs (the Blob and Service Bus SDKs, the
// outcome topic's link) while the host starts its listeners, not after the first revocation.
if (underFunctionsHost()) setImmediate(() => void getRuntime().warmUp());
