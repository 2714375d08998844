/**
 * Building containerd filter strings. In a filter list, separate strings are OR'ed and
 * "," inside one string ANDs conditions; values are quoted like Go string literals.
 *
 * @module
 */

/** Quotes a value for a containerd filter (`"k8s.io"`). */
export function quoteFilterValue(value: string): string {
  return JSON.stringify(value);
}

/** ANDs `condition` onto each alternative of `filters` (an empty list means "all"). */
export function andFilter(condition: string, filters: readonly string[]): string[] {
  return filters.length === 0 ? [condition] : filters.map((f) => `${condition},${f}`);
}
