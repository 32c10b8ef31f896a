/**
 * Jest runs the TypeScript sources as native ES modules (the package is `"type": "module"`,
 * and nanoid 5 is ESM-only), so `npm test` starts Node with `--experimental-vm-modules`.
 * Type checking is done once by `tsc --noEmit` in `npm test`, so ts-jest only transpiles.
 */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
    // The package's self-reference, as tsconfig's paths map it for tsc and tsx.
    '^akkordeon$': '<rootDir>/src/index.ts',
    '^akkordeon/(.*)$': '<rootDir>/src/$1/index.ts',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }],
  },
  testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  testTimeout: 120000,
  maxWorkers: 2,
};
