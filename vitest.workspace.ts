/**
 * The test projects of the workspace: every package and app with a vitest config. Vitest 4 no longer
 * reads this file by itself; vitest.config.ts imports the list.
 */
export default ['packages/*/vitest.config.ts', 'apps/*/vitest.config.ts'];
