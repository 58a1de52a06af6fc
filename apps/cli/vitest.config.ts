import { lstreamProject } from '../../vitest.shared.js';

export default lstreamProject('lstream', { testTimeout: 120_000 });
