import { defineConfig } from 'tsup';

/** The build every package shares: an ESM bundle of src/index.ts with type declarations. */
export const lstreamBuild = defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // Classes keep their names: error names (`err.name`, `LstreamError.isInstance` across package
  // copies) would otherwise read `_OutputExistsError` where esbuild renamed a class internally.
  keepNames: true,
});
