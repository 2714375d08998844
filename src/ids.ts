/**
 * Validation of sandbox ids and namespaces with containerd's identifier rules, so a
 * malformed id is refused with the rule instead of being looked up.
 *
 * @module
 */
import { InvalidArgumentError } from "./errors.ts";

/** containerd's maximum identifier length. */
export const MAX_IDENTIFIER_LENGTH = 76;
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

/** Whether `value` is a valid containerd identifier. */
export function isIdentifier(value: string): boolean {
  return value.length <= MAX_IDENTIFIER_LENGTH && IDENTIFIER.test(value);
}

/** Throws InvalidArgumentError naming `what`, the value and the rule. */
export function validateIdentifier(what: string, value: string): void {
  if (value === "") throw new InvalidArgumentError(`${what} must not be empty`);
  if (value.length > MAX_IDENTIFIER_LENGTH) {
    throw new InvalidArgumentError(
      `${what} ${JSON.stringify(value.slice(0, 80))}... is ${value.length} characters long; ` +
        `at most ${MAX_IDENTIFIER_LENGTH} are allowed`,
    );
  }
  if (!IDENTIFIER.test(value)) {
    throw new InvalidArgumentError(
      `${what} ${JSON.stringify(value)} is not a valid identifier: ` +
        `use letters and digits, separated by single ".", "_" or "-"`,
    );
  }
}
