// Tests run as ES modules (NestJS 12, jose, openid-client and @nats-io are ESM-only),
// compiled by swc with decorator metadata, against the real local Postgres and NATS.
const swc = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
    target: 'es2022',
    keepClassNames: true,
  },
  module: { type: 'es6' },
  sourceMaps: 'inline',
};

export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', swc] },
  moduleNameMapper: {
    '^@ally/(contracts|messaging|persistence|platform|testing)$': '<rootDir>/libs/$1/src/index.ts',
    '^@ally/(gateway|identity|chat|billing|privacy|notify)$': '<rootDir>/services/$1/src/index.ts',
    '^@ally/emulators$': '<rootDir>/tools/emulators/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testMatch: ['<rootDir>/libs/*/{src,test}/**/*.spec.ts', '<rootDir>/services/*/{src,test}/**/*.spec.ts', '<rootDir>/tools/*/{src,test}/**/*.spec.ts', '<rootDir>/e2e/**/*.spec.ts'],
  testTimeout: 60_000,
  maxWorkers: 2,
};
