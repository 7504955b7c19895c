/**
 * The environment for child processes (ssh-keygen, ssh-add, apiKeyCommand): ours minus the API
 * key, which none of them needs, so it does not show in /proc/<pid>/environ of any child.
 */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { CSCS_API_KEY: _omitted, ...rest } = env;
  return rest;
}
