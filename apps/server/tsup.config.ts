import { defineConfig } from 'tsup';
import { lstreamBuild } from '../../tsup.shared.js';

export default defineConfig({ ...lstreamBuild, entry: ['src/main.ts'], dts: false });
