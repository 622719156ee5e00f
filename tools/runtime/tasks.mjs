// tasks.mjs: the task table (share/tasks.json, docs/design.md §5.3) for the runtime scripts.
// modelexport names the file it uses in MODELEXPORT_TASKS, so a copy of this directory anywhere
// (docs/meson.md: MODELEXPORT_RUNTIME_DIR) reads the same table as the tool. Run by hand, the scripts look
// where an install (share/modelexport/tasks.json, one level above runtime/) or the source tree
// (share/tasks.json, two levels above tools/runtime/) keeps it.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Unavailable } from './cli.mjs';

let table = null;

/// The parsed task table; Unavailable when it cannot be found or read (the check cannot start).
export function taskTable() {
    if (table) return table;
    const here = path.dirname(fileURLToPath(import.meta.url));
    const candidates = process.env.MODELEXPORT_TASKS
        ? [process.env.MODELEXPORT_TASKS]
        : [path.join(here, '..', 'tasks.json'), path.join(here, '..', '..', 'share', 'tasks.json')];
    const found = candidates.find((p) => fs.existsSync(p));
    if (!found) throw new Unavailable(`tasks.json not found (looked at ${candidates.join(', ')}); set MODELEXPORT_TASKS to modelexport's share/modelexport/tasks.json`);
    try {
        table = JSON.parse(fs.readFileSync(found, 'utf8'));
    } catch (e) {
        throw new Unavailable(`${found}: ${e.message}`);
    }
    return table;
}

/// The entry of a task name or alias, or undefined.
export function taskEntry(name) {
    return taskTable().tasks.find((t) => t.name === name || t.aliases.includes(name));
}

/// The decoder's KV cache names and axes (the with_past row's `cache`).
export function decoderCache() {
    return taskTable().tasks.find((t) => t.with_past)?.cache;
}

/// Tasks tjs_pipeline.mjs runs: those with a transformers.js pipeline, except the encoder-decoders
/// (two ONNX files and generate(): tjs_seq2seq.mjs).
export function pipelineTasks() {
    return taskTable().tasks.filter((t) => t.transformers_js_pipeline && !t.encoder_decoder).map((t) => t.name);
}

function sizePair(value) {
    if (value === undefined || value === null || typeof value === 'boolean') return null;
    if (typeof value === 'number') return [value, value];
    if (Array.isArray(value) && value.length === 2) return [value[0], value[1]];
    if (value.height && value.width) return [value.height, value.width];
    if (value.shortest_edge) return [value.shortest_edge, value.shortest_edge];
    return null;
}

/// [height, width] of pixel_values: the table's one rule (the first source giving a size, else its default).
export function imageSize(preprocessor, config) {
    const docs = { 'preprocessor_config.json': preprocessor ?? {}, 'config.json': config ?? {} };
    const rule = taskTable().image_size;
    for (const source of rule.sources) {
        const doc = docs[source.file] ?? {};
        if (source.when && !doc[source.when]) continue;
        const hw = sizePair(doc[source.key]);
        if (hw) return hw;
    }
    return [rule.default, rule.default];
}
