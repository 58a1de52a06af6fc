import { defineConfig } from 'tsup';

/** The build every package shares: an ESM bundle of src/index.ts with type declarations. */
export const lstreamBuild = defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
