import { lstreamProject } from '../../vitest.shared.js';

export default lstreamProject('@ls/metrics');
