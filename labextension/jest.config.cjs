// The DOM-free modules' unit tests (test/), compiled by ts-jest: nothing of JupyterLab is loaded.
// test/*.spec.js test the hub pages' logic (../hub/js, ../spawners/js): plain CommonJS, run as is.
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] }
};
