const transform = { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] };

/** @type {import('jest').Config} */
module.exports = {
  maxWorkers: 2,
  testTimeout: 30000,
  projects: [
    {
      // The core through in-memory ports: no stand-ins, no network, seconds.
      displayName: 'core',
      testEnvironment: 'node',
      roots: ['<rootDir>/test/core'],
      testMatch: ['**/*.test.ts'],
      transform,
    },
    {
      // The real SDKs against the local stand-ins (Azurite started once for the run).
      displayName: 'e2e',
      testEnvironment: 'node',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.test.ts'],
      testPathIgnorePatterns: ['<rootDir>/test/core/'],
      transform,
      globalSetup: '<rootDir>/test/support/globalSetup.ts',
      globalTeardown: '<rootDir>/test/support/globalTeardown.ts',
    },
  ],
};
