/**
 * Stamping src/build_info.ts with what a build was made from (used by compile.ts).
 *
 * @module
 */

export interface BuildInfo {
  commit?: string;
  builtAt?: string;
}

/** The module text of src/build_info.ts with BUILD_INFO set to `info`; throws when absent. */
export function stampBuildInfo(source: string, info: BuildInfo): string {
  const stamped = source.replace(
    /export const BUILD_INFO: \{[^}]*\} = \{[^;]*\};/,
    `export const BUILD_INFO: { commit?: string; builtAt?: string } = ${JSON.stringify(info)};`,
  );
  if (stamped === source) throw new Error("cannot find BUILD_INFO to stamp in src/build_info.ts");
  return stamped;
}
