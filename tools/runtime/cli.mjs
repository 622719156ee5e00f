// Shared command-line frame of the runtime check scripts: one JSON line on
// stdout, the runtime's own error on stderr.
//   exit 0: success, exactly one JSON line on stdout
//   exit 1: the runtime ran and failed on the package; last stderr line "<prog>: error: <message>"
//   exit 2: usage error
//   exit 3: the runtime could not start (its npm package or the task table cannot be loaded);
//           last stderr line "<prog>: unavailable: <message>". modelexport reports this as an
//           unavailable runtime, never as a failed package.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export class UsageError extends Error {}

/** The check could not start: nothing was learnt about the package. */
export class Unavailable extends Error {}

export const EXIT_FAILED = 1;
export const EXIT_UNAVAILABLE = 3;

/** The first line of an error's message: what a one-line report quotes. */
export function firstLine(e) {
    const msg = e && e.message ? e.message : String(e);
    return msg.split('\n').find((l) => l.trim() !== '') ?? msg;
}

/**
 * Imports an npm package of the runtime. A package that is missing or fails to load (a broken
 * native binding) means the runtime is unavailable, not that the package under test is wrong.
 */
export async function importRuntime(name) {
    try {
        return await import(name);
    } catch (e) {
        // Not "npm install here" alone: this directory may be an installed share/ or a subproject's source tree.
        const here = path.dirname(fileURLToPath(import.meta.url));
        const hint = e && e.code === 'ERR_MODULE_NOT_FOUND'
            ? `; run 'npm ci --ignore-scripts' in ${here}, or in a writable copy of it named by MODELEXPORT_RUNTIME_DIR`
            : '';
        throw new Unavailable(`cannot load ${name}: ${firstLine(e)}${hint}`);
    }
}

// Inference monitoring: how many timed runs follow the first (untimed, warming) one.
export const TIMED_RUNS = 5;

/**
 * Runs `fn` once for its result, then TIMED_RUNS more times; returns the first result and the
 * median wall time of the timed runs in milliseconds.
 */
export async function timedRuns(fn) {
    const result = await fn();
    const ms = [];
    for (let i = 0; i < TIMED_RUNS; ++i) {
        const start = process.hrtime.bigint();
        await fn();
        ms.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    ms.sort((a, b) => a - b);
    return { result, latencyMs: ms[Math.floor(ms.length / 2)] };
}

// Libraries log to the console; stdout is reserved for the result line.
const toStderr = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;

/**
 * Parses argv with node:util's parseArgs (one positional PKGDIR plus `options`),
 * lets `check(opts)` reject combinations by throwing UsageError, runs `body(opts)`
 * and prints what it returns as one JSON line.
 */
export function runCli({ prog, usage, options, check = () => {} }, body) {
    let opts;
    try {
        const { values, positionals } = parseArgs({
            args: process.argv.slice(2),
            options: { ...options, help: { type: 'boolean', short: 'h' } },
            allowPositionals: true,
        });
        if (values.help) {
            process.stdout.write(usageText(usage) + '\n');
            process.exit(0);
        }
        if (positionals.length === 0) throw new UsageError('missing PKGDIR');
        if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`);
        opts = { pkgDir: positionals[0], ...values };
        check(opts);
    } catch (e) {
        // parseArgs reports unknown options and missing values as TypeErrors with a code.
        if (e instanceof UsageError || (e && typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS'))) {
            process.stderr.write(`${prog}: ${e.message}\n${usageText(usage)}\n`);
            process.exit(2);
        }
        fail(prog, e);
        return;
    }
    Promise.resolve()
        .then(() => body(opts))
        .then(
            (result) => {
                // The runtime's peak memory (maxRSS is in KiB), reported with every answer.
                result.peak_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);
                return new Promise((resolve) => process.stdout.write(JSON.stringify(result) + '\n', resolve));
            },
        )
        .then(
            () => process.exit(0),
            (e) => fail(prog, e),
        );
}

// A usage text may depend on the task table; when that cannot be read, the script is unavailable.
function usageText(usage) {
    return typeof usage === 'function' ? usage() : usage;
}

// The last stderr line is the one modelexport quotes: the message's first line. The rest of a
// multi-line message (and the stack) comes before it, for a reader of the whole log.
function fail(prog, e) {
    const unavailable = e instanceof Unavailable;
    const msg = e && e.message ? e.message : String(e);
    const line = firstLine(e);
    if (msg !== line || (!unavailable && e && e.stack)) process.stderr.write(`${e && e.stack ? e.stack : msg}\n`);
    process.stderr.write(`${prog}: ${unavailable ? 'unavailable' : 'error'}: ${line}\n`);
    process.exit(unavailable ? EXIT_UNAVAILABLE : EXIT_FAILED);
}
