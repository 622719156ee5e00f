// Shared command-line frame of the runtime check scripts: one JSON line on
// stdout, the runtime's own error on stderr.
//   exit 0: success, exactly one JSON line on stdout
//   exit 1: the runtime failed; last stderr line "<prog>: error: <message>"
//   exit 2: usage error
import { parseArgs } from 'node:util';

export class UsageError extends Error {}

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
            process.stdout.write(usage + '\n');
            process.exit(0);
        }
        if (positionals.length === 0) throw new UsageError('missing PKGDIR');
        if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`);
        opts = { pkgDir: positionals[0], ...values };
        check(opts);
    } catch (e) {
        // parseArgs reports unknown options and missing values as TypeErrors with a code.
        if (e instanceof UsageError || (e && typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS'))) {
            process.stderr.write(`${prog}: ${e.message}\n${usage}\n`);
            process.exit(2);
        }
        throw e;
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
            (e) => {
                const msg = e && e.message ? e.message : String(e);
                process.stderr.write(`${prog}: error: ${msg}\n`);
                process.exit(1);
            },
        );
}
