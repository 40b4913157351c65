/**
 * The start-up floor the design card sets (bench/coldStart.ts bundles and times it as it does the
 * app): what any function app built on the required packages does at module load, and nothing of
 * ours. A managed identity credential, a Graph client over it, and one Service Bus queue function
 * registered with @azure/functions. The Service Bus SDK is left out: the app loads it after start.
 */
import { app } from '@azure/functions';
import { ManagedIdentityCredential } from '@azure/identity';
import { Client } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials';

export const credential = new ManagedIdentityCredential({
  clientId: '11111111-1111-4111-8111-111111111111',
});
const graph = Client.initWithMiddleware({
  authProvider: new TokenCredentialAuthenticationProvider(credential, {
    scopes: ['https://graph.microsoft.com/.default'],
  }),
});

app.serviceBusQueue('floor', {
  connection: 'ServiceBusConnection',
  queueName: 'floor',
  handler: () => Promise.resolve(void graph),
});
