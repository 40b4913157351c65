import { app } from '@azure/functions';
import { registerRoutes } from '../shared/adapters/functionHandler';
import { getRuntime } from '../shared/app/runtime';

// Validate settings at start-up: a missing or malformed setting stops the app from loading (and
// says which), while the messages wait safely in the queues.
getRuntime();

registerRoutes((name, options) => app.serviceBusQueue(name, options), getRuntime);
