/**
 * Assertions for the tests. JSR (and with it @std/assert) is unreachable here, so these
 * are thin names over node:assert/strict, whose failures show both values.
 *
 * @module
 */
import nodeAssert from "node:assert/strict";

export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message as string);
}

export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  nodeAssert.deepStrictEqual(actual, expected, message as string);
}

export function assertNotEquals(actual: unknown, expected: unknown, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message as string);
}

export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  nodeAssert.match(actual, pattern, message as string);
}

/** Awaits `fn` and checks it rejects with an instance of `ErrorClass`; returns the error. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  ErrorClass: new (...args: any[]) => E,
  message?: string,
): Promise<E> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  nodeAssert.ok(caught !== undefined, message ?? `expected a rejection with ${ErrorClass.name}`);
  nodeAssert.ok(
    caught instanceof ErrorClass,
    `expected ${ErrorClass.name}, got ${
      caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)
    }`,
  );
  return caught as E;
}

export function assertThrows<E extends Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass: new (...args: any[]) => E,
  pattern?: RegExp,
): E {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  nodeAssert.ok(caught instanceof ErrorClass, `expected ${ErrorClass.name}, got ${String(caught)}`);
  if (pattern) nodeAssert.match((caught as Error).message, pattern);
  return caught as E;
}
