// The start-up baseline: a bare `deno run` of a hello world.
console.log("hello");
