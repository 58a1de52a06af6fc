import { lstreamProject } from '../../vitest.shared.js';

export default lstreamProject('@ls/client-gcs', { testTimeout: 60_000 });
