import { lstreamProject } from '../../vitest.shared.js';

export default lstreamProject('@ls/client-s3', { testTimeout: 60_000 });
