#!/usr/bin/env node
// ort_check.mjs: load PKGDIR/model.onnx with onnxruntime-node, run one inference and
// print the result as one JSON line on stdout.
//
// Usage: node ort_check.mjs PKGDIR [--model FILE] [--inputs FILE.json] [--text "sentence"] [--generate N]
//
//   --model FILE        the ONNX file, relative to PKGDIR (default model.onnx; modelexport validate passes
//                       where the package's layout keeps it, e.g. onnx/model.onnx)
//
// Exit codes: 0 success, 1 load/run failure (message on stderr), 2 usage error, 3 the runtime cannot
// start (onnxruntime-node, transformers.js or the task table cannot be loaded; cli.mjs).
//
// Inputs:
//   --inputs FILE.json  {"inputs": {name: {"dtype": "int64"|"float32", "shape": [...], "data": [flat]}}}
//                       fed exactly as given.
//   otherwise           generated from the graph's input names:
//     input_ids / attention_mask / token_type_ids  tokenized sentence (--text, default below) with the
//                                                  package's own tokenizer (transformers.js, offline);
//                                                  with three axes in the graph (multiple-choice:
//                                                  [batch, num_choices, sequence]) the sentence paired
//                                                  with each of CHOICES (the graph's fixed count, else
//                                                  2), padded to one length
//     position_ids                                 0..seq_len-1
//     pixel_values                                 float32 [1, C, H, W], value[i] = float32(sin(double i))
//                                                  C, H, W: the graph's fixed dims, else config num_channels
//                                                  (default 3) and H, W by share/tasks.json's one
//                                                  image_size rule (tasks.mjs imageSize)
//     input_values                                 float32 [1, 12345],   value[i] = float32(sin(double i))
//                                                  (not the export's dummy length: the axis must be symbolic)
//     attention_mask beside input_values           int64 ones of the waveform's length
//     input_features                               float32 [1, mel bins, frames] (Speech2Text: [1, frames, features]
//                                                  and an attention_mask of ones), value[i] = float32(sin(double i))
//                                                  (a speech encoder: the graph's fixed dims, else config.json's
//                                                  num_mel_bins and 2 * max_source_positions)
//     flattened_patches                            float32 [1, max_patches, 2 + patch values], value[i] = float32(sin(double i))
//                                                  and an attention_mask of ones over the patches (Pix2Struct:
//                                                  the graph's fixed dims, else preprocessor_config.json's
//                                                  max_patches and config.json's patch_embed_hidden_size)
//     past_values                                  float32 [1, context_length, channels], value[i] = float32(sin(double i))
//                                                  (a time series: the graph's fixed dims, else config.json's
//                                                  context_length and num_input_channels)
//     states, actions, returns_to_go               float32 [1, steps, state_dim | act_dim | 1], value[i] = float32(sin(double i))
//     timesteps, attention_mask beside them        0..steps-1 and ones, in the graph's dtype (a Decision Transformer's
//                                                  trajectory: steps = min(20, max_ep_len, n_positions / 3), state_dim
//                                                  and act_dim the graph's fixed dims, else config.json's)
//   Integer inputs use the dtype the graph declares (int64 or int32).
//
// Decoders (inputs past_key_values.{i}.key/.value or fused .key_value, outputs present.*): without --inputs, the text is
// tokenized and run with an empty cache (past_sequence_length 0), then the greedy next token is run
// as one cached step (the prompt's present as past) and again as a full recompute of the whole
// sequence without cache; the step's logits must equal the recompute's last position within 1e-4
// (else exit 1). Outputs: prompt_logits, step_logits, and "decoder": {prompt_ids, step_id,
// step_position, cache_max_diff}. --generate N (decoders only) then continues greedily over the cache
// for N new tokens in all (the step's token first) and adds "generated_ids" to "decoder".
//
// Output values that are NaN or +-Infinity cannot be written as JSON numbers and come out as null.
//
// stdout carries exactly one line; anything libraries log goes to stderr.

import fs from 'node:fs';
import path from 'node:path';

import { UsageError, importRuntime, runCli, timedRuns } from './cli.mjs';
import { decoderCache, imageSize } from './tasks.mjs';

const PROG = 'ort_check';
const DEFAULT_TEXT = 'the movie was great and i loved it';
const USAGE = `usage: ${PROG}.mjs PKGDIR [--model FILE] [--inputs FILE.json] [--text "sentence"] [--generate N]`;

function readJsonIfExists(file) {
    if (!fs.existsSync(file)) return null;
    return JSON.parse(fs.readFileSync(file, 'utf8'));
}

const TYPED_ARRAYS = {
    float32: Float32Array,
    float64: Float64Array,
    int64: BigInt64Array,
    int32: Int32Array,
    int16: Int16Array,
    int8: Int8Array,
    uint64: BigUint64Array,
    uint32: Uint32Array,
    uint16: Uint16Array,
    uint8: Uint8Array,
    bool: Uint8Array,
};

// Build typed-array data of the given ORT dtype from plain numbers / bigints.
function makeData(dtype, values) {
    const Ctor = TYPED_ARRAYS[dtype];
    if (!Ctor) throw new Error(`unsupported input dtype "${dtype}"`);
    const out = new Ctor(values.length);
    const big = Ctor === BigInt64Array || Ctor === BigUint64Array;
    for (let i = 0; i < values.length; ++i) {
        const v = values[i];
        if (big) out[i] = typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v)));
        else if (dtype === 'bool') out[i] = v ? 1 : 0;
        else out[i] = Number(v);
    }
    return out;
}

function product(shape) {
    return shape.reduce((a, b) => a * b, 1);
}

function loadInputsFile(ort, file) {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!doc || typeof doc.inputs !== 'object' || doc.inputs === null) {
        throw new Error(`${file}: expected an object with an "inputs" object`);
    }
    const feeds = {};
    for (const [name, spec] of Object.entries(doc.inputs)) {
        const { dtype, shape, data } = spec ?? {};
        if (typeof dtype !== 'string' || !Array.isArray(shape) || !Array.isArray(data)) {
            throw new Error(`${file}: input "${name}" needs "dtype", "shape" and "data"`);
        }
        if (product(shape) !== data.length) {
            throw new Error(`${file}: input "${name}" has ${data.length} values for shape [${shape.join(', ')}]`);
        }
        feeds[name] = new ort.Tensor(dtype, makeData(dtype, data), shape);
    }
    return feeds;
}

const TEXT_INPUTS = new Set(['input_ids', 'attention_mask', 'token_type_ids', 'position_ids']);
// Generated waveforms have this many samples: deliberately not one second at any usual sampling rate,
// so a package whose exporter pinned its dummy length fails here.
const AUDIO_SAMPLES = 12345;

// Tokenizes `text`, or, with `pairs`, the batch (text, pair) for each pair padded to one length.
async function tokenize(pkgDir, text, pairs = null) {
    const { AutoTokenizer, env } = await importRuntime('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    // With an absolute directory as the model id, transformers.js reads <dir>/<file> directly;
    // localModelPath is only prefixed to ids that look like "org/name".
    env.localModelPath = '';
    // Never consult (or fill) the library's file cache inside node_modules.
    env.useFSCache = false;
    env.useBrowserCache = false;
    // transformers.js silently skips the tokenizer when tokenizer_config.json is absent and then fails
    // with an unrelated TypeError; name the missing file instead.
    for (const f of ['tokenizer_config.json', 'tokenizer.json']) {
        if (!fs.existsSync(path.join(pkgDir, f))) {
            throw new Error(`file not found: ${path.join(pkgDir, f)} (needed to tokenize the text inputs)`);
        }
    }
    const tokenizer = await AutoTokenizer.from_pretrained(pkgDir);
    if (pairs) return tokenizer(pairs.map(() => text), { text_pair: pairs, padding: true, return_tensor: false, return_token_type_ids: true });
    return tokenizer(text, { return_tensor: false, return_token_type_ids: true });
}

// A text input with three axes is a multiple-choice model's [batch, num_choices, sequence]: the
// sentence is paired with each choice, as a multiple-choice user tokenizes (prompt, ending) pairs.
const CHOICES = ['it was good', 'it was bad', 'it was long', 'it was short'];

function choiceCount(meta, names) {
    const shapes = names.filter((n) => TEXT_INPUTS.has(n)).map((n) => meta.get(n)?.shape ?? []);
    const three = shapes.find((s) => s.length === 3);
    if (!three) return 0;
    const fixed = typeof three[1] === 'number' && three[1] > 0 ? three[1] : 2;
    if (fixed > CHOICES.length) throw new Error(`the graph fixes ${fixed} choices; at most ${CHOICES.length} can be generated (use --inputs)`);
    return fixed;
}

// The configs size the generated inputs (an image size, mel bins, a context length): a broken or hostile
// one must fail the check with its reason, not exhaust the machine. 64 Mi values is 256 MiB of float32,
// past any input a real model of these tasks takes.
const MAX_GENERATED_VALUES = 64 * 1024 * 1024;

/// `shape`, when every dim is a positive integer and the tensor is within the bound.
function generatedShape(name, shape) {
    if (!shape.every((d) => Number.isSafeInteger(d) && d > 0) || product(shape) > MAX_GENERATED_VALUES) {
        throw new Error(`input "${name}" would be generated as [${shape.join(', ')}] from the package's configs, not a shape ` +
                        `of positive sizes within ${MAX_GENERATED_VALUES} values (pass --inputs FILE.json)`);
    }
    return shape;
}

function sinFill(n) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; ++i) out[i] = Math.sin(i);
    return out;
}

/// [1, context_length, channels] of a time series: the graph's fixed dims, else config.json's.
function seriesShape(graphShape, config) {
    const fixed = (i) => (typeof graphShape[i] === 'number' && graphShape[i] > 0 ? graphShape[i] : null);
    const length = fixed(1) ?? config?.context_length;
    const channels = fixed(2) ?? config?.num_input_channels;
    if (!length || !channels) throw new Error('cannot determine past_values length/channels (no config.json context_length, num_input_channels)');
    return [1, length, channels];
}

// Frames of Speech2Text's features when neither the graph nor config.json fixes them.
const SPEECH_FRAMES = 64;

/// A speech encoder's input_features shape and the length of the attention_mask beside it:
/// Whisper's [1, mel bins, frames] (the graph's fixed dims, else config.json's num_mel_bins and twice
/// max_source_positions: the encoder's stride-2 convolution), or Speech2Text's [1, frames,
/// input_feat_per_channel] with a mask over the frames.
function featuresShape(graphShape, config) {
    const fixed = (i) => (typeof graphShape[i] === 'number' && graphShape[i] > 0 ? graphShape[i] : null);
    if (graphShape.length === 3 && config?.input_feat_per_channel) {
        const frames = fixed(1) ?? SPEECH_FRAMES;
        return { shape: [1, frames, fixed(2) ?? config.input_feat_per_channel], maskLength: frames };
    }
    const bins = fixed(1) ?? config?.num_mel_bins;
    const frames = fixed(2) ?? (config?.max_source_positions ? 2 * config.max_source_positions : null);
    if (graphShape.length !== 3 || !bins || !frames) {
        throw new Error('cannot determine input_features mel bins/frames (no fixed dims, no config.json num_mel_bins, max_source_positions)');
    }
    return { shape: [1, bins, frames], maskLength: frames };
}

/// Pix2Struct's flattened_patches shape: [1, patches, 2 + patch values] (each patch's row and column, then
/// its pixels), the graph's fixed dims, else the processor's max_patches and the vision config's patch width.
function patchesShape(graphShape, pre, config) {
    const fixed = (i) => (typeof graphShape[i] === 'number' && graphShape[i] > 0 ? graphShape[i] : null);
    const width = config?.vision_config?.patch_embed_hidden_size;
    const patches = fixed(1) ?? pre?.max_patches;
    const values = fixed(2) ?? (Number.isSafeInteger(width) ? width + 2 : null);
    if (!patches || !values) {
        throw new Error('cannot determine flattened_patches size (no fixed dims, no preprocessor_config.json max_patches, ' +
                        'no config.json vision_config.patch_embed_hidden_size)');
    }
    return [1, patches, values];
}

// Steps of a generated trajectory, within the model's timestep table and its 3 x steps positions.
const TRAJECTORY_STEPS = 20;

/// A Decision Transformer's trajectory: its step count and each per-step input's width (the graph's fixed
/// last dim, else config.json's state_dim / act_dim; returns_to_go is one number per step).
function trajectoryShapes(meta, config) {
    const steps = Math.min(TRAJECTORY_STEPS, config?.max_ep_len ?? TRAJECTORY_STEPS,
                           Math.floor((config?.n_positions ?? 3 * TRAJECTORY_STEPS) / 3));
    const width = (name, key) => {
        const last = meta.get(name)?.shape?.[2];
        const size = typeof last === 'number' && last > 0 ? last : key ? config?.[key] : 1;
        if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`cannot determine ${name} width (no config.json ${key})`);
        return [1, steps, size];
    };
    return { steps, states: width('states', 'state_dim'), actions: width('actions', 'act_dim'), returns_to_go: width('returns_to_go', null) };
}

async function generateInputs(ort, session, pkgDir, text) {
    const meta = new Map(session.inputMetadata.map((m) => [m.name, m]));
    const names = session.inputNames;

    let enc = null;
    const features = names.includes('input_features') && meta.get('input_features')?.isTensor
        ? featuresShape(meta.get('input_features').shape, readJsonIfExists(path.join(pkgDir, 'config.json')))
        : null;
    const patches = names.includes('flattened_patches') && meta.get('flattened_patches')?.isTensor
        ? generatedShape('flattened_patches', patchesShape(meta.get('flattened_patches').shape,
                                                           readJsonIfExists(path.join(pkgDir, 'preprocessor_config.json')),
                                                           readJsonIfExists(path.join(pkgDir, 'config.json'))))
        : null;
    const trajectory = names.includes('states') ? trajectoryShapes(meta, readJsonIfExists(path.join(pkgDir, 'config.json'))) : null;
    const maskLength = features ? features.maskLength : patches ? patches[1] : trajectory ? trajectory.steps : AUDIO_SAMPLES;
    // The attention_mask beside a waveform, features, patches or a trajectory masks them, not a sentence.
    const masksSignal = names.includes('input_values') || features !== null || patches !== null || trajectory !== null;
    const choices = choiceCount(meta, names);
    if (!masksSignal && names.some((n) => TEXT_INPUTS.has(n) && n !== 'position_ids')) {
        enc = await tokenize(pkgDir, text, choices ? CHOICES.slice(0, choices) : null);
    }
    // [1, seq], or [1, choices, seq] with the rows of the paired batch.
    const textTensor = (t, rows) => {
        const flat = rows.flat();
        return new ort.Tensor(t, makeData(t, flat), choices ? [1, rows.length, rows[0].length] : [1, flat.length]);
    };

    const feeds = {};
    for (const name of names) {
        const m = meta.get(name);
        const dtype = m && m.isTensor ? m.type : null;
        const graphShape = m && m.isTensor ? m.shape : [];
        if ((name === 'pixel_values' || name === 'input_values' || name === 'flattened_patches') && dtype && dtype !== 'float32') {
            throw new Error(`input "${name}" has dtype ${dtype}; only float32 can be generated (use --inputs)`);
        }
        if (masksSignal && name === 'attention_mask') {
            const t = dtype ?? 'int64';
            feeds[name] = new ort.Tensor(t, makeData(t, new Array(maskLength).fill(1)), [1, maskLength]);
        } else if (TEXT_INPUTS.has(name)) {
            const rows = enc ? (choices ? enc.input_ids : [enc.input_ids]) : [[0]];
            const seq = rows[0].length;
            let values;
            if (name === 'position_ids') values = rows.map(() => Array.from({ length: seq }, (_, i) => i));
            else if (name === 'token_type_ids' && !enc.token_type_ids) values = rows.map(() => new Array(seq).fill(0));
            else values = choices ? enc[name] : [enc[name]];
            feeds[name] = textTensor(dtype ?? 'int64', values);
        } else if (name === 'pixel_values') {
            const config = readJsonIfExists(path.join(pkgDir, 'config.json'));
            const pre = readJsonIfExists(path.join(pkgDir, 'preprocessor_config.json'));
            const hw = imageSize(pre, config);
            const fixed = (i) => (typeof graphShape[i] === 'number' && graphShape[i] > 0 ? graphShape[i] : null);
            const c = fixed(1) ?? config?.num_channels ?? pre?.num_channels ?? 3;
            const h = fixed(2) ?? hw?.[0];
            const w = fixed(3) ?? hw?.[1];
            if (!h || !w) {
                throw new Error(
                    'cannot determine pixel_values height/width (no preprocessor_config.json size, no config image_size)',
                );
            }
            const shape = generatedShape(name, [1, c, h, w]);
            feeds[name] = new ort.Tensor('float32', sinFill(product(shape)), shape);
        } else if (name === 'flattened_patches') {
            feeds[name] = new ort.Tensor('float32', sinFill(product(patches)), patches);
        } else if (name === 'input_values') {
            const shape = [1, AUDIO_SAMPLES];
            feeds[name] = new ort.Tensor('float32', sinFill(shape[1]), shape);
        } else if (trajectory && (name === 'states' || name === 'actions' || name === 'returns_to_go')) {
            const shape = generatedShape(name, trajectory[name]);
            feeds[name] = new ort.Tensor('float32', sinFill(product(shape)), shape);
        } else if (trajectory && name === 'timesteps') {
            const t = dtype ?? 'int64';
            feeds[name] = new ort.Tensor(t, makeData(t, [...Array(trajectory.steps).keys()]), [1, trajectory.steps]);
        } else if (name === 'past_values') {
            const shape = generatedShape(name, seriesShape(graphShape, readJsonIfExists(path.join(pkgDir, 'config.json'))));
            feeds[name] = new ort.Tensor('float32', sinFill(product(shape)), shape);
        } else if (name === 'input_features' && dtype === 'float32') {
            const shape = generatedShape(name, features.shape);
            feeds[name] = new ort.Tensor('float32', sinFill(product(shape)), shape);
        } else {
            throw new Error(`do not know how to generate input "${name}"; pass --inputs FILE.json`);
        }
    }
    return feeds;
}

const CACHE_TOLERANCE = 1e-4;

// The cache's names come from the task table: past_key_values.{i}.key in, present.{i}.key out.
const pastPrefix = () => `${decoderCache().input_prefix}.`;
const presentPrefix = () => `${decoderCache().output_prefix}.`;

function isPast(name) {
    return name.startsWith(pastPrefix());
}

// The first step's empty cache tensor, shaped from the graph as transformers.js does
// (addPastKeyValues): batch_size is 1, any other named axis (a length) 0, fixed sizes kept. So
// [batch, heads, 0, head_dim] and a fused [batch, 0, 2 * head_dim] are both built from the graph.
function emptyCache(ort, name, meta) {
    const shape = meta.shape.map((d) => (typeof d === 'number' ? d : d === 'batch_size' ? 1 : 0));
    if (!shape.includes(0)) throw new Error(`${name}: no length axis to start empty in [${meta.shape}]`);
    const fixed = meta.shape.filter((d) => typeof d === 'number');
    if (fixed.length < meta.shape.length - 2) throw new Error(`${name}: every axis but batch and length (heads, head dim) must be fixed, got [${meta.shape}]`);
    return new ort.Tensor(meta.type, new Float32Array(0), shape);
}

// One decoder run: ids at positions start.., the attention mask over past + ids, and the past
// (an empty cache, emptyCache, when `present` is null).
async function decoderRun(ort, session, ids, start, present) {
    const meta = new Map(session.inputMetadata.map((m) => [m.name, m]));
    const feeds = {};
    const ints = (name, values) => {
        const t = meta.get(name)?.type ?? 'int64';
        return new ort.Tensor(t, makeData(t, values), [1, values.length]);
    };
    for (const name of session.inputNames) {
        if (name === 'input_ids') feeds[name] = ints(name, ids);
        else if (name === 'attention_mask') feeds[name] = ints(name, new Array(start + ids.length).fill(1));
        else if (name === 'position_ids') feeds[name] = ints(name, ids.map((_, i) => start + i));
        else if (isPast(name) && present) feeds[name] = present[presentPrefix() + name.slice(pastPrefix().length)];
        else if (isPast(name)) feeds[name] = emptyCache(ort, name, meta.get(name));
        else throw new Error(`do not know how to generate decoder input "${name}"; pass --inputs FILE.json`);
    }
    return session.run(feeds);
}

function lastPosition(logits) {
    const [, seq, vocab] = logits.dims;
    return Array.from(logits.data.slice((seq - 1) * vocab, seq * vocab), Number);
}

function argmax(xs) {
    let best = 0;
    for (let i = 1; i < xs.length; ++i) if (xs[i] > xs[best]) best = i;
    return best;
}

// The prompt with an empty cache, one cached greedy step, and the same step recomputed without cache.
async function decoderCheck(ort, session, pkgDir, text, generate) {
    const ids = (await tokenize(pkgDir, text)).input_ids.map(Number);
    const prompt = await decoderRun(ort, session, ids, 0, null);
    const next = argmax(lastPosition(prompt.logits));
    // The cached step is what generation repeats: its median time is the latency.
    const { result: step, latencyMs } = await timedRuns(() => decoderRun(ort, session, [next], ids.length, prompt));
    const full = await decoderRun(ort, session, [...ids, next], 0, null);
    const cached = lastPosition(step.logits), recomputed = lastPosition(full.logits);
    const diff = Math.max(...cached.map((v, i) => Math.abs(v - recomputed[i])));
    if (!(diff <= CACHE_TOLERANCE)) {
        throw new Error(`cached step logits differ from a full recompute by ${diff} (> ${CACHE_TOLERANCE}): the KV cache is wrong`);
    }
    const entry = (t) => ({ dtype: t.type, shape: Array.from(t.dims), data: toNumbers(t.data) });
    const decoder = { prompt_ids: ids, step_id: next, step_position: ids.length, cache_max_diff: diff };
    if (generate) {
        // Greedy decoding over the cache: each step feeds the last token and the previous present.
        const generated = [next];
        let last = step;
        while (generated.length < generate) {
            const token = argmax(lastPosition(last.logits));
            generated.push(token);
            if (generated.length === generate) break;
            last = await decoderRun(ort, session, [token], ids.length + generated.length - 1, last);
        }
        decoder.generated_ids = generated;
    }
    return {
        inputs: { input_ids: [1, ids.length] },
        outputs: { prompt_logits: entry(prompt.logits), step_logits: entry(step.logits) },
        decoder,
        latency_ms: latencyMs,
    };
}

function toNumbers(data) {
    const out = new Array(data.length);
    for (let i = 0; i < data.length; ++i) {
        const v = data[i];
        out[i] = typeof v === 'bigint' ? Number(v) : typeof v === 'boolean' ? (v ? 1 : 0) : v;
    }
    return out;
}

/** Loads the package's model (--model, default model.onnx), runs one inference and returns the result line. */
async function runModel(opts) {
    const pkgDir = path.resolve(opts.pkgDir);
    const modelPath = path.join(pkgDir, opts.model ?? 'model.onnx');

    const ort = (await importRuntime('onnxruntime-node')).default;
    ort.env.logLevel = 'fatal';
    const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        logSeverityLevel: 4,
    });

    const runtime = { runtime: 'onnxruntime-node', version: ort.env.versions?.node ?? ort.env.versions?.common ?? null };
    if (!opts.inputs && session.inputNames.some(isPast)) {
        const result = await decoderCheck(ort, session, pkgDir, opts.text ?? DEFAULT_TEXT, opts.generate);
        await session.release?.();
        return { ...runtime, ...result };
    }
    const feeds = opts.inputs
        ? loadInputsFile(ort, path.resolve(opts.inputs))
        : await generateInputs(ort, session, pkgDir, opts.text ?? DEFAULT_TEXT);

    const { result: results, latencyMs } = await timedRuns(() => session.run(feeds));

    const inputs = {};
    for (const [name, t] of Object.entries(feeds)) inputs[name] = Array.from(t.dims);
    const outputs = {};
    for (const name of session.outputNames) {
        const t = results[name];
        if (!t) continue;
        outputs[name] = { dtype: t.type, shape: Array.from(t.dims), data: toNumbers(t.data) };
    }
    await session.release?.();
    return { ...runtime, inputs, outputs, latency_ms: latencyMs };
}

runCli(
    {
        prog: PROG,
        usage: USAGE,
        options: { model: { type: 'string' }, inputs: { type: 'string' }, text: { type: 'string' }, generate: { type: 'string' } },
        check: (opts) => {
            if (opts.model !== undefined && (opts.model.split(/[\\/]/).includes('..') || path.isAbsolute(opts.model))) {
                throw new UsageError('--model must be a file inside PKGDIR');
            }
            if (opts.inputs !== undefined && opts.text !== undefined) throw new UsageError('--inputs and --text cannot be combined');
            if (opts.generate !== undefined) {
                if (!/^[1-9][0-9]{0,3}$/.test(opts.generate)) throw new UsageError(`--generate needs a count from 1 to 9999, got "${opts.generate}"`);
                opts.generate = Number(opts.generate);
            }
        },
    },
    runModel,
);
