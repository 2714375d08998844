/**
 * What a build was made from. `deno task compile` stamps this file while it compiles
 * (and restores it after), so a released binary knows its commit; run from source it
 * says so.
 */
export const BUILD_INFO: { commit?: string; builtAt?: string } = {};
