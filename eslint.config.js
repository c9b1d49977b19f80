// Lint with the layering of docs/architecture.md enforced as import rules:
//  - main/ never imports electron or vue (it runs under plain Node, in the CLI and tests);
//  - the folders of main/ are layers, and a layer imports only the layers below it:
//      contract → engine, data, metrics → workspace → training → workers → jobs → services
//      → server → cli
//    (contract imports nothing; services start worker threads only through jobs/);
//  - the renderer imports only *types* from main/contract, and no Node or Electron modules.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import vue from 'eslint-plugin-vue'
import { builtinModules } from 'node:module'

const uiPackages = ['electron', 'vue', 'vue-router', 'pinia', 'naive-ui', 'echarts', 'vue-echarts']
const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)]

/** Import patterns that name a folder of main/ from one or two levels below main/. */
const folders = (...names) => names.flatMap((f) => [`../${f}`, `../${f}/**`, `../../${f}`, `../../${f}/**`])

/** The import rule of main/ files: no UI, no renderer or shell, and none of `forbidden`. */
function mainImports(forbidden = [], message = '') {
  return [
    'error',
    {
      paths: uiPackages.map((name) => ({
        name,
        message: 'main/ runs under plain Node: it must not import Electron or UI packages.',
      })),
      patterns: [
        { group: ['**/renderer/**', '**/electron/**'], message: 'main/ must not import the renderer or the Electron shell.' },
        ...(forbidden.length ? [{ group: forbidden, message: `${message} (docs/architecture.md)` }] : []),
      ],
    },
  ]
}

/** One layer of main/: its files may not import the folders above it. */
const layer = (dirs, above, message) => ({
  files: dirs.map((d) => `main/${d}/**/*.ts`),
  rules: { '@typescript-eslint/no-restricted-imports': mainImports(above, message) },
})

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
    rules: { '@typescript-eslint/no-restricted-imports': mainImports() },
  },
  layer(['contract'], ['../*', '../../*'], 'main/contract is shared with the renderer: it imports only zod and its own files'),
  layer(
    ['engine', 'data', 'metrics'],
    folders('workspace', 'training', 'workers', 'jobs', 'services', 'server', 'cli'),
    'engine, data and metrics depend on nothing above them',
  ),
  layer(['workspace'], folders('training', 'workers', 'jobs', 'services', 'server', 'cli'), 'workspace/ (files on disk) must not import the layers above it'),
  layer(['training'], folders('workers', 'jobs', 'services', 'server', 'cli'), 'training/ (the loop) runs inside a worker and must not import workers, jobs or services'),
  layer(['workers'], folders('jobs', 'services', 'server', 'cli'), 'workers/ (thread entries) run training/ and must not import jobs or services'),
  // The one exception: the inference worker runs the services' prediction, evaluation and export
  // (the functions `dsd predict` / `dsd evaluate` / `dsd export` run) off the main thread, and
  // nothing else of them.
  {
    files: ['main/workers/inference-worker.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': mainImports(
        [...folders('jobs', 'server', 'cli'), '../services/*', '!../services/predict-evaluate', '!../services/export-job'],
        'the inference worker may import only services/predict-evaluate and services/export-job of the services',
      ),
    },
  },
  layer(['jobs'], folders('training', 'services', 'server', 'cli'), 'jobs/ (the job system) knows no job kind: it must not import training or services'),
  layer(
    ['services'],
    [...folders('server', 'cli'), '../workers/spawn', '../workers/*-worker'],
    'services start worker threads through jobs/ (runWorker), and must not import the server or the CLI',
  ),
  layer(['server'], folders('cli'), 'the server must not import the CLI'),
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
