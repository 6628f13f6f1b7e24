// ESLint's recommended rules and typescript-eslint's, as JupyterLab's extension template
// uses them; formatting is prettier's alone (eslint-config-prettier turns off what clashes).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'lib/', 'coverage/', '*.tsbuildinfo'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/naming-convention': [
        'error',
        { selector: 'interface', format: ['PascalCase'], custom: { regex: '^I[A-Z]', match: true } }
      ],
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none' }],
      eqeqeq: 'error',
      curly: ['error', 'all'],
      'prefer-arrow-callback': 'error'
    }
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { globals: { module: 'writable', require: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' }
  },
  {
    // The hub pages' scripts (../hub/js, ../spawners/js; `npm run lint:pages` lints them from the
    // repository's root): plain JavaScript that browsers run as classic scripts, with no build.
    files: ['hub/js/**/*.js', 'spawners/js/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {
        window: 'readonly',
        document: 'readonly',
        location: 'readonly',
        navigator: 'readonly',
        fetch: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        Option: 'readonly',
        URL: 'readonly',
        CSS: 'readonly',
        module: 'writable'
      }
    }
  },
  {
    // Their unit tests (test/*.spec.js), CommonJS under jest.
    files: ['test/**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', describe: 'readonly', test: 'readonly', expect: 'readonly' }
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' }
  },
  prettier
);
