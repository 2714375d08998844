/**
 * Sandbox ids and namespaces follow containerd's identifier rules.
 */
import { InvalidArgumentError } from "../../src/errors.ts";
import { MAX_IDENTIFIER_LENGTH, validateIdentifier } from "../../src/ids.ts";
import { assertEquals, assertMatch, assertThrows } from "../harness/assert.ts";

Deno.test("containerd-style identifiers are accepted", () => {
  for (
    const ok of [
      "a",
      "k8s.io",
      "moby",
      "0123456789abcdef",
      "pod_sandbox-1.v2",
      "A.b_C-d",
      "x".repeat(MAX_IDENTIFIER_LENGTH),
    ]
  ) {
    validateIdentifier("sandbox id", ok);
  }
  assertEquals(MAX_IDENTIFIER_LENGTH, 76);
});

Deno.test("an empty identifier is refused, naming what was empty", () => {
  const err = assertThrows(() => validateIdentifier("sandbox id", ""), InvalidArgumentError);
  assertMatch(err.message, /^sandbox id must not be empty$/);
});

Deno.test("an identifier longer than 76 characters is refused with its length and the limit", () => {
  const err = assertThrows(
    () => validateIdentifier("namespace", "n".repeat(77)),
    InvalidArgumentError,
  );
  assertMatch(err.message, /^namespace /);
  assertMatch(err.message, /is 77 characters long; at most 76 are allowed/);
});

Deno.test("characters and separators outside the rule are refused, naming the value and the rule", () => {
  for (
    const bad of [
      "a/b",
      "a b",
      "ä",
      "a:b",
      "../etc",
      "-leading",
      "trailing-",
      ".hidden",
      "trailing.",
      "_x",
      "double--dash",
      "double..dot",
      "mixed._sep",
    ]
  ) {
    const err = assertThrows(() => validateIdentifier("sandbox id", bad), InvalidArgumentError);
    assertMatch(err.message, new RegExp(`^sandbox id ${RegExp.escape(JSON.stringify(bad))} `));
    assertMatch(err.message, /use letters and digits, separated by single "\.", "_" or "-"/);
  }
});

Deno.test("the error carries gRPC INVALID_ARGUMENT", () => {
  const err = assertThrows(() => validateIdentifier("sandbox id", "a/b"), InvalidArgumentError);
  assertEquals(err.code, 3);
});
