// Lint with the layering of docs/design.md enforced as import rules:
//  - main/ never imports electron or vue (it runs under plain Node, in the CLI and tests);
//  - main/engine, main/data, main/metrics import nothing above them;
//  - the renderer imports only *types* from main/contract, and no Node or Electron modules.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import vue from 'eslint-plugin-vue'
import { builtinModules } from 'node:module'

const uiPackages = ['electron', 'vue', 'vue-router', 'pinia', 'naive-ui', 'echarts', 'vue-echarts']
const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)]

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      'release/**',
      'test/.tmp/**',
      '.devcarry/**',
      '**/.*.mts',
      'resources/**',
      'docs/**',
      '**/*.d.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...vue.configs['flat/recommended'],
  {
    files: ['**/*.vue'],
    languageOptions: { parserOptions: { parser: tseslint.parser } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'vue/multi-word-component-names': 'off',
      'vue/max-attributes-per-line': 'off',
      'vue/singleline-html-element-content-newline': 'off',
      'vue/html-self-closing': 'off',
      'vue/html-indent': 'off',
      'vue/html-closing-bracket-newline': 'off',
      'vue/multiline-html-element-content-newline': 'off',
    },
  },
  {
    files: ['main/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: uiPackages.map((name) => ({
            name,
            message: 'main/ runs under plain Node: it must not import Electron or UI packages.',
          })),
          patterns: [
            { group: ['**/renderer/**', '**/electron/**'], message: 'main/ must not import the renderer or the Electron shell.' },
          ],
        },
      ],
    },
  },
  {
    files: ['main/engine/**/*.ts', 'main/data/**/*.ts', 'main/metrics/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: uiPackages.map((name) => ({ name, message: 'No UI or Electron in the core layers.' })),
          patterns: [
            {
              group: ['**/services', '**/services/**', '**/server', '**/server/**', '**/workspace', '**/workspace/**', '**/cli', '**/cli/**', '**/workers/**', '**/renderer/**', '**/electron/**'],
              message: 'engine, data and metrics depend on nothing above them (docs/design.md).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.vue'],
    languageOptions: { globals: { window: 'readonly', document: 'readonly' } },
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'electron', message: 'The renderer talks to main only through window.dsd / the contract.' },
            ...nodeBuiltins.map((name) => ({ name, message: 'No Node modules in the renderer.' })),
          ],
          patterns: [
            {
              group: ['**/main/contract', '**/main/contract/*'],
              allowTypeImports: true,
              message: 'The renderer imports only types from main/contract (use `import type`).',
            },
            {
              group: ['**/main/**', '!**/main/contract', '!**/main/contract/*', '**/electron/**'],
              message: 'The renderer must not import main-process or Electron code.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['scripts/**/*.mjs', 'bin/**/*.mjs', '*.config.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
  },
)
