// tasks.mjs: the task table (share/tasks.json, docs/design.md §5.3) for the runtime scripts.
// Installed: share/modelexport/tasks.json, one level above runtime/; source tree: share/tasks.json,
// two levels above tools/runtime/.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const candidates = [path.join(here, '..', 'tasks.json'), path.join(here, '..', '..', 'share', 'tasks.json')];
const found = candidates.find((p) => fs.existsSync(p));
if (!found) throw new Error(`tasks.json not found (looked at ${candidates.join(', ')}); reinstall modelexport`);

export const TASK_TABLE = JSON.parse(fs.readFileSync(found, 'utf8'));

/// The entry of a task name or alias, or undefined.
export function taskEntry(name) {
    return TASK_TABLE.tasks.find((t) => t.name === name || t.aliases.includes(name));
}

/// The decoder's KV cache names and axes (the with_past row's `cache`).
export const DECODER_CACHE = TASK_TABLE.tasks.find((t) => t.with_past)?.cache;

/// Tasks with a transformers.js pipeline.
export const TJS_TASKS = TASK_TABLE.tasks.filter((t) => t.transformers_js_pipeline).map((t) => t.name);

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
    for (const source of TASK_TABLE.image_size.sources) {
        const doc = docs[source.file] ?? {};
        if (source.when && !doc[source.when]) continue;
        const hw = sizePair(doc[source.key]);
        if (hw) return hw;
    }
    return [TASK_TABLE.image_size.default, TASK_TABLE.image_size.default];
}
