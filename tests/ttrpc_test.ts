/**
 * The ttrpc client against a test ttrpc server on a real unix socket: stream ids,
 * deadlines and metadata on the wire, many concurrent calls answered out of order, status
 * codes as typed errors, abort and deadline leaving the connection usable, the 4 MiB limit
 * both ways, connection loss, protocol violations and close.
 */
import { Buffer } from "node:buffer";
import {
  CancelledError,
  DeadlineExceededError,
  GrpcCode,
  NotFoundError,
  RemoteError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
} from "../src/errors.ts";
import { Response } from "../src/gen/ttrpc/ttrpc.ts";
import { TtrpcClient } from "../src/ttrpc/client.ts";
import { encodeFrame, FrameType, MAX_MESSAGE_LENGTH } from "../src/ttrpc/frame.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { eventually } from "./harness/process.ts";
import { type Handler, type ReceivedRequest, TestTtrpcServer } from "./harness/ttrpc_server.ts";

const SVC = "test.v1.Echo";
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** A cue a handler waits on. */
function cue() {
  let fire!: () => void;
  const fired = new Promise<void>((r) => fire = r);
  return { fire, fired };
}

async function withServer(
  handlers: Record<string, Handler>,
  body: (server: TestTtrpcServer, client: TtrpcClient) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "psd-ttrpc-" });
  const server = TestTtrpcServer.start(`${dir}/s.sock`, handlers);
  const client = await TtrpcClient.connect(server.path);
  try {
    await body(server, client);
  } finally {
    await client[Symbol.asyncDispose]();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const echo: Handler = (req) => ({ payload: req.payload });
const hang: Handler = () => "no-reply";

Deno.test("a call carries service, method, payload, timeout and metadata; stream ids are odd and increase", async () => {
  await withServer({ [`${SVC}/Echo`]: echo }, async (server, client) => {
    assertEquals(dec(await client.call(SVC, "Echo", enc("one"))), "one");
    assertEquals(
      dec(
        await client.call(SVC, "Echo", enc("two"), {
          timeoutMs: 1_500,
          metadata: { "containerd-namespace": "k8s.io" },
        }),
      ),
      "two",
    );
    assertEquals(dec(await client.call(SVC, "Echo", new Uint8Array())), "");
    const seen = server.requests.map((r) => [r.streamId, r.service, r.method, r.timeoutNano]);
    assertEquals(seen, [
      [1, SVC, "Echo", 0],
      [3, SVC, "Echo", 1_500_000_000],
      [5, SVC, "Echo", 0],
    ]);
    assertEquals(server.requests[1].metadata, { "containerd-namespace": "k8s.io" });
  });
});

Deno.test("1,000 concurrent calls on one connection, answered in random order, each get their own answer", async () => {
  const handler: Handler = async (req) => {
    await new Promise((r) => setTimeout(r, Math.random() * 20));
    return { payload: enc(`re:${dec(req.payload)}`) };
  };
  await withServer({ [`${SVC}/Slow`]: handler }, async (server, client) => {
    const answers = await Promise.all(
      Array.from({ length: 1_000 }, (_, i) => client.call(SVC, "Slow", enc(String(i)))),
    );
    answers.forEach((a, i) => assertEquals(dec(a), `re:${i}`));
    assertEquals(server.connections.size, 1);
    assertEquals(client.pending, 0);
  });
});

Deno.test("status codes become the typed errors of src/errors.ts, naming the call and the server's message", async () => {
  const fail = (code: number, message: string): Handler => () => ({ status: { code, message } });
  await withServer({
    [`${SVC}/NotFound`]: fail(GrpcCode.NOT_FOUND, "container abc: not found"),
    [`${SVC}/Unavailable`]: fail(GrpcCode.UNAVAILABLE, "shutting down"),
    [`${SVC}/Odd`]: fail(99, "what is this"),
    [`${SVC}/Internal`]: fail(GrpcCode.INTERNAL, "boom"),
  }, async (server, client) => {
    const nf = await assertRejects(() => client.call(SVC, "NotFound", enc("")), NotFoundError);
    assertEquals(
      nf.message,
      `ttrpc ${SVC}/NotFound on ${server.path}: container abc: not found`,
    );
    await assertRejects(() => client.call(SVC, "Unavailable", enc("")), UnavailableError);
    const odd = await assertRejects(() => client.call(SVC, "Odd", enc("")), RemoteError);
    assertEquals(odd.code, GrpcCode.UNKNOWN);
    const internal = await assertRejects(() => client.call(SVC, "Internal", enc("")), RemoteError);
    assertEquals(internal.code, GrpcCode.INTERNAL);
    // The test server answers an unknown method as ttrpc servers do: UNIMPLEMENTED.
    await assertRejects(() => client.call(SVC, "Nope", enc("")), UnimplementedError);
    // A custom `what` names the call instead.
    const named = await assertRejects(
      () => client.call(SVC, "NotFound", enc(""), { what: "shim Wait k8s.io/abc" }),
      NotFoundError,
    );
    assertMatch(named.message, /^shim Wait k8s\.io\/abc: /);
  });
});

Deno.test("aborting one call rejects it with CancelledError; the others and the connection go on", async () => {
  const release = cue();
  const handlers: Record<string, Handler> = {
    [`${SVC}/Echo`]: echo,
    // Answers only after the cue, i.e. after its caller gave up.
    [`${SVC}/Late`]: async (req) => {
      await release.fired;
      return { payload: req.payload };
    },
  };
  await withServer(handlers, async (server, client) => {
    const abort = new AbortController();
    const aborted = client.call(SVC, "Late", enc("late"), { signal: abort.signal });
    const other = client.call(SVC, "Late", enc("other"));
    await eventually("server.requests.length === 2", () => server.requests.length === 2, {
      intervalMs: 5,
    });
    abort.abort();
    const err = await assertRejects(() => aborted, CancelledError);
    assertMatch(err.message, /Late.*cancelled/);
    assertEquals(client.pending, 1);
    assertEquals(dec(await client.call(SVC, "Echo", enc("still"))), "still");
    // Both late answers arrive: the aborted call's is dropped, the other's resolves.
    release.fire();
    assertEquals(dec(await other), "other");
    assertEquals(dec(await client.call(SVC, "Echo", enc("after"))), "after");
    // An already-aborted signal sends nothing.
    const before = server.requests.length;
    await assertRejects(
      () => client.call(SVC, "Echo", enc("x"), { signal: AbortSignal.abort() }),
      CancelledError,
    );
    assertEquals(server.requests.length, before);
  });
});

Deno.test("an abort reason that is a typed error is what the call rejects with", async () => {
  await withServer({ [`${SVC}/Hang`]: hang }, async (_server, client) => {
    const abort = new AbortController();
    const call = client.call(SVC, "Hang", enc(""), { signal: abort.signal });
    abort.abort(new UnavailableError("agent shutting down"));
    const err = await assertRejects(() => call, UnavailableError);
    assertEquals(err.message, "agent shutting down");
  });
});

Deno.test("a deadline is sent as timeout_nano and enforced by the client when the server ignores it", async () => {
  await withServer({ [`${SVC}/Hang`]: hang, [`${SVC}/Echo`]: echo }, async (server, client) => {
    const started = performance.now();
    const err = await assertRejects(
      () => client.call(SVC, "Hang", enc(""), { timeoutMs: 80 }),
      DeadlineExceededError,
    );
    const took = performance.now() - started;
    assert(took >= 75 && took < 5_000, `rejected after ${took} ms`);
    assertMatch(err.message, /no answer within 80 ms/);
    assertEquals(server.requests[0].timeoutNano, 80_000_000);
    assertEquals(dec(await client.call(SVC, "Echo", enc("ok"))), "ok");
    await assertRejects(() => client.call(SVC, "Echo", enc(""), { timeoutMs: 0 }), RangeError);
  });
});

Deno.test("a request above 4 MiB is refused before sending; one just under goes through both ways", async () => {
  await withServer({ [`${SVC}/Echo`]: echo }, async (server, client) => {
    const err = await assertRejects(
      () => client.call(SVC, "Echo", new Uint8Array(MAX_MESSAGE_LENGTH)),
      ResourceExhaustedError,
    );
    assertMatch(err.message, /above ttrpc's limit of 4194304/);
    assertEquals(server.requests.length, 0, "nothing was sent");
    // Request and Response envelopes add a few bytes around the payload.
    const big = new Uint8Array(MAX_MESSAGE_LENGTH - 64).map((_, i) => i % 251);
    const back = await client.call(SVC, "Echo", big);
    assertEquals(back.length, big.length);
    assert(back.every((b, i) => b === big[i]), "payload intact");
  });
});

Deno.test("an incoming frame above 4 MiB fails the connection: pending calls reject UnavailableError", async () => {
  await withServer({ [`${SVC}/Hang`]: hang }, async (server, client) => {
    const calls = [1, 2, 3].map(() => client.call(SVC, "Hang", enc("")));
    await eventually("server.requests.length === 3", () => server.requests.length === 3, {
      intervalMs: 5,
    });
    const header = new Uint8Array(10);
    new DataView(header.buffer).setUint32(0, MAX_MESSAGE_LENGTH + 1);
    new DataView(header.buffer).setUint32(4, 1);
    header[8] = FrameType.RESPONSE;
    await server.requests[0].connection.writeRaw(header);
    for (const call of calls) {
      const err = await assertRejects(() => call, UnavailableError);
      assertMatch(err.message, /protocol error: .*4194305 payload bytes, above ttrpc's limit/);
    }
    const reason = await client.closed;
    assert(reason instanceof UnavailableError);
    await assertRejects(() => client.call(SVC, "Hang", enc("")), UnavailableError);
  });
});

Deno.test("connection loss rejects every pending call with UnavailableError at once", async () => {
  await withServer({ [`${SVC}/Hang`]: hang }, async (server, client) => {
    const calls = Array.from({ length: 50 }, () => client.call(SVC, "Hang", enc("")));
    await eventually("server.requests.length === 50", () => server.requests.length === 50, {
      intervalMs: 5,
    });
    const cut = performance.now();
    for (const c of server.connections) c.close();
    for (const call of calls) {
      const err = await assertRejects(() => call, UnavailableError);
      assertMatch(err.message, /connection closed by the peer/);
    }
    const took = performance.now() - cut;
    assert(took < 500, `took ${took} ms`);
    assertEquals(client.pending, 0);
    assertMatch(
      (await client.closed).message,
      /^ttrpc connection to .*: connection closed by the peer/,
    );
    await assertRejects(() => client.call(SVC, "Hang", enc("")), UnavailableError);
  });
});

Deno.test("a connection cut inside a frame is a protocol error, not a hang", async () => {
  await withServer({ [`${SVC}/Hang`]: hang }, async (server, client) => {
    const call = client.call(SVC, "Hang", enc(""));
    await eventually("server.requests.length === 1", () => server.requests.length === 1, {
      intervalMs: 5,
    });
    const frame = encodeFrame({
      streamId: 1,
      type: FrameType.RESPONSE,
      flags: 0,
      payload: Response.encode({ status: undefined, payload: Buffer.from("abcdef") }).finish(),
    });
    const conn = server.requests[0].connection;
    await conn.writeRaw(frame.subarray(0, frame.length - 2));
    conn.close();
    const err = await assertRejects(() => call, UnavailableError);
    assertMatch(err.message, /inside a frame/);
  });
});

Deno.test("a data or unknown frame for a unary call fails that call only; frames for no call are ignored", async () => {
  await withServer({ [`${SVC}/Hang`]: hang, [`${SVC}/Echo`]: echo }, async (server, client) => {
    const a = client.call(SVC, "Hang", enc("")); // stream 1
    const b = client.call(SVC, "Hang", enc("")); // stream 3
    const c = client.call(SVC, "Hang", enc("")); // stream 5
    await eventually("server.requests.length === 3", () => server.requests.length === 3, {
      intervalMs: 5,
    });
    const conn = server.requests[0].connection;
    await conn.writeRaw(
      encodeFrame({ streamId: 1, type: FrameType.DATA, flags: 0, payload: enc("x") }),
    );
    await conn.writeRaw(encodeFrame({ streamId: 3, type: 0x7f, flags: 0, payload: enc("") }));
    // No call has stream 99 or 2 (even: server-initiated, unsupported): ignored.
    await conn.writeRaw(
      encodeFrame({ streamId: 99, type: FrameType.RESPONSE, flags: 0, payload: enc("") }),
    );
    await conn.writeRaw(
      encodeFrame({ streamId: 2, type: FrameType.REQUEST, flags: 0, payload: enc("") }),
    );
    // Garbage where a Response should be.
    await conn.writeRaw(
      encodeFrame({
        streamId: 5,
        type: FrameType.RESPONSE,
        flags: 0,
        payload: Uint8Array.of(0xff, 0xff, 0xff),
      }),
    );
    assertMatch((await assertRejects(() => a, RemoteError)).message, /unexpected data frame/);
    assertMatch((await assertRejects(() => b, RemoteError)).message, /unexpected type-127 frame/);
    const garbled = await assertRejects(() => c, RemoteError);
    assertEquals(garbled.code, GrpcCode.INTERNAL);
    assertMatch(garbled.message, /undecodable ttrpc response/);
    assertEquals(dec(await client.call(SVC, "Echo", enc("fine"))), "fine");
  });
});

Deno.test("close() rejects pending calls with CancelledError and later calls too; dispose waits for the reader", async () => {
  await withServer({ [`${SVC}/Hang`]: hang }, async (server, client) => {
    const call = client.call(SVC, "Hang", enc(""));
    await eventually("server.requests.length === 1", () => server.requests.length === 1, {
      intervalMs: 5,
    });
    client.close();
    client.close();
    const err = await assertRejects(() => call, CancelledError);
    assertMatch(err.message, /client closed/);
    await assertRejects(() => client.call(SVC, "Hang", enc("")), CancelledError);
    assert((await client.closed) instanceof CancelledError);
    await client[Symbol.asyncDispose]();
    // The server sees the connection end.
    await eventually("server.connections.size === 0", () => server.connections.size === 0, {
      intervalMs: 5,
    });
  });
});

Deno.test("connecting to a missing socket or one nobody listens on is UnavailableError naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-ttrpc-" });
  try {
    const missing = await assertRejects(
      () => TtrpcClient.connect(`${dir}/nope.sock`),
      UnavailableError,
    );
    assertEquals(
      missing.message,
      `cannot connect to ttrpc socket ${dir}/nope.sock: no such socket`,
    );
    // A socket file left behind by a dead server (Deno removes its own on close: keep a link).
    const l = Deno.listen({ transport: "unix", path: `${dir}/live.sock` });
    await Deno.link(`${dir}/live.sock`, `${dir}/stale.sock`);
    l.close();
    const stale = await assertRejects(
      () => TtrpcClient.connect(`${dir}/stale.sock`),
      UnavailableError,
    );
    assertMatch(stale.message, /connection refused/);
    await assertRejects(
      () => TtrpcClient.connect(`${dir}/nope.sock`, { signal: AbortSignal.abort() }),
      CancelledError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unary() encodes and decodes generated message types; an undecodable payload is INTERNAL", async () => {
  const handlers: Record<string, Handler> = {
    [`${SVC}/Resp`]: (req: ReceivedRequest) => {
      const r = Response.decode(req.payload);
      return {
        payload: Response.encode({ status: undefined, payload: Buffer.from(`${dec(r.payload)}!`) })
          .finish(),
      };
    },
    [`${SVC}/Garbage`]: () => ({ payload: Uint8Array.of(0x0a, 0xff) }),
  };
  await withServer(handlers, async (_server, client) => {
    const res = await client.unary(SVC, "Resp", Response, Response, {
      status: undefined,
      payload: Buffer.from("hi"),
    });
    assertEquals(dec(res.payload), "hi!");
    const err = await assertRejects(
      () => client.unary(SVC, "Garbage", Response, Response, Response.fromPartial({})),
      RemoteError,
    );
    assertEquals(err.code, GrpcCode.INTERNAL);
    assertMatch(err.message, /undecodable response/);
  });
});
