import { lstreamBuild } from '../../tsup.shared.js';

export default lstreamBuild;
