import { lstreamProject } from '../../vitest.shared.js';

export default lstreamProject('lstream-server', { testTimeout: 120_000 });
