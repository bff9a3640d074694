// Lint for src and tests (type-aware: every rule that needs types reads the package tsconfigs for
// src and tsconfig.test.json for tests). Run by `npm run lint` (and so by `npm test`).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['**/dist/**', '**/node_modules/**', '**/*.js', '**/*.mjs', '**/*.cjs', '**/*.d.ts'],
  },
  {
    files: [
      'packages/*/src/**/*.ts',
      'packages/*/test/**/*.ts',
      'test/system/**/*.ts',
      'deploy/helm/test/**/*.ts',
      'loadtest/test/**/*.ts',
    ],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        project: ['./packages/*/tsconfig.json', './tsconfig.test.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // node:test's test()/describe() return promises that the runner itself awaits and reports.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      // Off: interface methods are async by contract (Broker, ClusterDirectory, test doubles of
      // them); an implementation whose body happens to be synchronous still returns a promise and
      // turns a throw into a rejection, which is what callers rely on.
      '@typescript-eslint/require-await': 'off',
      // Off: the protocol code matches control characters on purpose (SSE frame and channel-name
      // validation reject CR, LF, NUL and the Unicode line separators).
      'no-control-regex': 'off',
    },
  },
  {
    // The chart tests walk rendered YAML documents of every Kubernetes kind (objects typed by
    // kubernetes-models only where they are validated): typing each path would restate the
    // Kubernetes schema, so `any` and its unsafe-* uses are allowed here and only here.
    files: ['deploy/helm/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
