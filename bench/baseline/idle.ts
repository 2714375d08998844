// The idle baseline: a bare Deno process that only waits.
console.log("ready");
setTimeout(() => {}, 2 ** 31 - 1);
