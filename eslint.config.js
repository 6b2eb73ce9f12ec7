// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (/** @type {string[]} */ forbidden) => ({
  'no-restricted-imports': [
    'error',
    {
      patterns: forbidden.map((group) => ({
        group: [`**/${group}/**`],
        message: `this layer may not import ${group}/`,
      })),
    },
  ],
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'run/**', 'bench/results/**'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.strictTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allow: [{ from: 'lib', name: 'BigInt' }] },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-extraneous-class': 'off',
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'before', 'after', 'test'] },
          ],
        },
      ],
      '@typescript-eslint/no-unnecessary-condition': ['error', { allowConstantLoopConditions: true }],
    },
  },
  // client-node's API models are plain data classes; its documented use passes object literals.
  {
    files: [
      'common/kube/**/*.ts',
      'server/leases/**/*.ts',
      'ccm-integration/ccm/**/*.ts',
      'test/support/fake-kube-api.ts',
      'test/support/fake-kube/**/*.ts',
      'test/integration/fake-kube-api.test.ts',
      'test/e2e/ccm-*.test.ts',
    ],
    rules: {
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      '@typescript-eslint/no-misused-spread': 'off',
    },
  },
  // Dependency direction: proto and common are the base; server, agent and the dialer never import each other.
  { files: ['proto/**/*.ts'], rules: layer(['common', 'server', 'agent', 'ccm-integration']) },
  { files: ['common/**/*.ts'], rules: layer(['server', 'agent', 'ccm-integration']) },
  { files: ['server/**/*.ts'], rules: layer(['agent', 'ccm-integration']) },
  { files: ['agent/**/*.ts'], rules: layer(['server', 'ccm-integration']) },
  { files: ['ccm-integration/**/*.ts'], rules: layer(['server', 'agent']) },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
