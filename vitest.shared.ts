import { defineProject } from 'vitest/config';

/**
 * Vitest settings every package shares: tests run against `src/` of workspace packages (through the
 * `@ls/source` export condition), never against a stale `dist/`.
 */
export function lstreamProject(name: string, overrides: { testTimeout?: number; include?: string[] } = {}) {
  return defineProject({
    resolve: { conditions: ['@ls/source', 'node', 'import', 'default'] },
    ssr: { resolve: { conditions: ['@ls/source', 'node', 'import', 'default'], externalConditions: ['@ls/source'] } },
    test: {
      name,
      environment: 'node',
      include: overrides.include ?? ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: overrides.testTimeout ?? 30_000,
      hookTimeout: 60_000,
    },
  });
}
