import { startAzuriteTable, type AzuriteTable } from '../../dev/azurite';

declare global {
  var __AZURITE__: AzuriteTable | undefined;
}

/** Starts one in-memory Azurite for the whole run; test files get its connection string. */
export default async function globalSetup(): Promise<void> {
  const azurite = await startAzuriteTable();
  globalThis.__AZURITE__ = azurite;
  process.env.TEST_AZURITE_CONNECTION_STRING = azurite.connectionString;
}
