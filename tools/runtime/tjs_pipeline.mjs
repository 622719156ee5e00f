#!/usr/bin/env node
// tjs_pipeline.mjs: run a transformers.js pipeline on a modelexport package directory, fully offline,
// and print the result as one JSON line on stdout.
//
// Usage: node tjs_pipeline.mjs PKGDIR --task TASK [--text T] [--context C] [--samples N] [--image HxW]
//                               [--max-new-tokens N] [--layout flat|hub] [--dtype D] [--pooling MODE] [--normalize]
//
// --pooling and --normalize are the feature-extraction pipeline's own options (default: none, off),
// e.g. a sentence-transformers recipe's mean pooling and Normalize module.
//
// TASK is a task with a transformers_js_pipeline in share/tasks.json (text-classification,
// token-classification, question-answering, fill-mask, feature-extraction (also -with-past), image-classification,
// object-detection, audio-classification, automatic-speech-recognition (CTC), text-generation, text-to-audio: the
// waveform's sampling rate and length). For question-answering, --text is the question
// and --context the context. For fill-mask, a literal "[MASK]" in --text is replaced by the tokenizer's
// own mask token. text-generation is greedy (do_sample: false) for exactly --max-new-tokens tokens
// (default 16) and returns the prompt's and the new token ids.
//
// Vision tasks get a generated RGB image (--image HxW, default 64x48): pixel (x, y) has every channel
// (7x + 13y) mod 256, handed over as a RawImage so no image file is decoded. Audio tasks get a
// generated waveform (--samples N, default 12345; not one second at any usual rate) as a Float32Array:
// float32(sin(0.05 i)). Vision and audio answers come with "processed": the processor's output
// (pixel_values / input_values), so a caller can compute torch's answer for exactly the same input.
//
// Exit codes: 0 success, 1 load/run failure (message on stderr), 2 usage error, 3 the runtime cannot
// start (transformers.js or the task table cannot be loaded; cli.mjs).
//
// The model is read as fp32 on the CPU. --layout flat (the default) reads PKGDIR/model.onnx (not
// onnx/model_quantized.onnx): subfolder '' and model_file_name 'model'. --layout hub (modelexport's
// onnx/ layout) passes no file options at all, so the library's own defaults find onnx/model.onnx:
// that is what a user of a hub package writes. --dtype (default fp32) picks a variant file the way
// transformers.js does (q8: model_quantized.onnx, fp16: model_fp16.onnx, ...; modelexport export --variants).
// stdout carries exactly one line; anything the libraries log goes to stderr.

import fs from 'node:fs';
import path from 'node:path';

import { UsageError, importRuntime, runCli, timedRuns } from './cli.mjs';
import { pipelineTasks, taskEntry } from './tasks.mjs';

const PROG = 'tjs_pipeline';
const usage = () =>
    `usage: ${PROG}.mjs PKGDIR --task TASK [--text T] [--context C] [--samples N] [--image HxW] [--max-new-tokens N] [--pooling MODE] [--normalize]\n  TASK: ${pipelineTasks().join(', ')}` +
    '\n  (encoder-decoder tasks: tjs_seq2seq.mjs)';
const DEFAULT_SAMPLES = 12345;
const DEFAULT_IMAGE = '64x48';
const DEFAULT_NEW_TOKENS = 16;

const DEFAULT_TEXT = 'the movie was great and i loved it';
const DEFAULT_MASK_TEXT = 'the movie was [MASK] and i loved it';
const DEFAULT_QUESTION = 'where does john live?';
const DEFAULT_CONTEXT = 'john lives in paris and he loved the movie.';

function softmaxInPlace(xs) {
    let m = -Infinity;
    for (const x of xs) if (x > m) m = x;
    let sum = 0;
    for (let i = 0; i < xs.length; ++i) {
        xs[i] = Math.exp(xs[i] - m);
        sum += xs[i];
    }
    for (let i = 0; i < xs.length; ++i) xs[i] /= sum;
    return xs;
}

// Token indices (into the question+context encoding) of the best answer span, following the same
// rules as the question-answering pipeline: only context tokens after the first separator, no special
// tokens, start <= end, and the highest product of start and end probabilities.
async function answerSpan(pipe, question, context) {
    const { tokenizer, model } = pipe;
    const inputs = tokenizer(question, { text_pair: context, padding: true, truncation: true });
    const { start_logits, end_logits } = await model(inputs);
    const ids = inputs.input_ids.tolist()[0].map(Number);
    const special = new Set(tokenizer.all_special_ids.map(Number));
    const sep = ids.indexOf(Number(tokenizer.sep_token_id));
    const start = Array.from(start_logits.data, Number);
    const end = Array.from(end_logits.data, Number);
    for (let i = 1; i < ids.length; ++i) {
        if (i <= sep || special.has(ids[i])) {
            start[i] = -Infinity;
            end[i] = -Infinity;
        }
    }
    softmaxInPlace(start);
    softmaxInPlace(end);
    start[0] = 0;
    end[0] = 0;
    let best = null;
    for (let s = 0; s < ids.length; ++s) {
        for (let e = s; e < ids.length; ++e) {
            const p = start[s] * end[e];
            if (best === null || p > best.p) best = { s, e, p };
        }
    }
    const answer = tokenizer.decode(ids.slice(best.s, best.e + 1), { skip_special_tokens: true });
    return { start: best.s, end: best.e, answer, tokens: ids.length };
}

function tensorEntry(t) {
    return { dims: Array.from(t.dims), data: Array.from(t.data, Number) };
}

function generatedImage(RawImage, spec) {
    const [height, width] = spec.split('x').map(Number);
    const data = new Uint8ClampedArray(width * height * 3);
    for (let y = 0; y < height; ++y)
        for (let x = 0; x < width; ++x) data.fill((7 * x + 13 * y) % 256, 3 * (y * width + x), 3 * (y * width + x) + 3);
    return new RawImage(data, width, height, 3);
}

function generatedWaveform(samples) {
    const out = new Float32Array(samples);
    for (let i = 0; i < samples; ++i) out[i] = Math.sin(0.05 * i);
    return out;
}

// `call` runs the pipeline (timed, see run()); `pipe` gives its processor and model.
async function runVision(pipe, call, task, image) {
    const { pixel_values } = await pipe.processor(image);
    if (task === 'image-classification') {
        const [top] = await call(image, { top_k: 1 });
        return { label: top.label, score: top.score, pixel_values: tensorEntry(pixel_values) };
    }
    // threshold 0: every query's best class, so the caller can compare all of them with torch.
    // percentage: boxes relative to the image; pixel boxes are truncated to integers.
    const out = await call(image, { threshold: 0, percentage: true });
    return { detections: out, image: [image.height, image.width], pixel_values: tensorEntry(pixel_values) };
}

async function runAudio(pipe, call, task, wave) {
    const inputs = await pipe.processor(wave);
    if (task === 'audio-classification') {
        const [top] = await call(wave, { top_k: 1 });
        return { label: top.label, score: top.score, input_values: tensorEntry(inputs.input_values) };
    }
    // The pipeline returns text only; the per-frame argmax ids are what it decodes.
    const { logits } = await pipe.model(inputs);
    const [frames, width] = logits.dims.slice(1);
    const ids = [];
    for (let f = 0; f < frames; ++f) {
        const row = logits.data.subarray(f * width, (f + 1) * width);
        ids.push(row.indexOf(Math.max(...row)));
    }
    const { text } = await call(wave);
    return { text, ids, input_values: tensorEntry(inputs.input_values) };
}

async function run(opts) {
    const { pipeline, env, RawImage } = await importRuntime('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    // An absolute directory is used as the model id; transformers.js then reads <dir>/<file>
    // directly (localModelPath is only prefixed to ids that look like "org/name").
    env.localModelPath = '';
    // Never consult (or fill) the library's file cache inside node_modules.
    env.useFSCache = false;
    env.useBrowserCache = false;

    const pkgDir = path.resolve(opts.pkgDir);
    if (!fs.statSync(pkgDir, { throwIfNoEntry: false })?.isDirectory()) {
        throw new Error(`package directory not found: ${pkgDir}`);
    }
    // Without tokenizer_config.json the pipeline silently gets no tokenizer and later fails with
    // "this.tokenizer is not a function"; say what is missing instead.
    const tokenizerConfig = path.join(pkgDir, 'tokenizer_config.json');
    if (taskEntry(opts.task).needs_tokenizer && !fs.existsSync(tokenizerConfig)) {
        throw new Error(`file not found: ${tokenizerConfig} (transformers.js loads the tokenizer only when it exists)`);
    }
    const files = opts.layout === 'hub' ? {} : { subfolder: '', model_file_name: 'model' };
    // The inputs are the pipeline's: text-generation and its -with-past task are one pipeline.
    const kind = taskEntry(opts.task).transformers_js_pipeline;
    const pipe = await pipeline(kind, pkgDir, {
        local_files_only: true,
        ...files,
        dtype: opts.dtype ?? 'fp32',
        device: 'cpu',
    });

    let result;
    // The pipeline's first call answers; the timed repeats give the latency (preprocessing included).
    let latencyMs = null;
    const call = async (...args) => {
        const timed = await timedRuns(() => pipe(...args));
        latencyMs ??= timed.latencyMs;
        return timed.result;
    };
    try {
        switch (kind) {
            case 'text-classification': {
                const out = await call(opts.text ?? DEFAULT_TEXT);
                const top = Array.isArray(out) ? out[0] : out;
                result = { label: top.label, score: top.score };
                break;
            }
            case 'token-classification': {
                // Keep every token, including those labelled "O" (dropped by default).
                const out = await call(opts.text ?? DEFAULT_TEXT, { ignore_labels: [] });
                result = {
                    tokens: out.map((t) => ({ index: t.index, word: t.word, entity: t.entity, score: t.score })),
                };
                break;
            }
            case 'question-answering': {
                const question = opts.text ?? DEFAULT_QUESTION;
                const context = opts.context ?? DEFAULT_CONTEXT;
                const out = await call(question, context);
                result = { answer: out.answer, score: out.score };
                const span = await answerSpan(pipe, question, context);
                if (span.answer === out.answer) {
                    result.start_token = span.start;
                    result.end_token = span.end;
                } else {
                    process.stderr.write(
                        `${PROG}: warning: could not recover the answer's token span ` +
                            `(${JSON.stringify(span.answer)} != ${JSON.stringify(out.answer)})\n`,
                    );
                }
                break;
            }
            case 'fill-mask': {
                const mask = pipe.tokenizer.mask_token;
                if (!mask) throw new Error('the tokenizer has no mask_token (tokenizer_config.json)');
                let text = opts.text ?? DEFAULT_MASK_TEXT;
                if (mask !== '[MASK]') text = text.split('[MASK]').join(mask);
                const out = await call(text, { top_k: 1 });
                const top = out[0];
                result = { token_str: top.token_str, token: top.token, score: top.score, sequence: top.sequence };
                break;
            }
            case 'text-generation': {
                // The pipeline returns text only; the model's generate() gives the ids it chose.
                const n = Number(opts['max-new-tokens'] ?? DEFAULT_NEW_TOKENS);
                const inputs = pipe.tokenizer(opts.text ?? DEFAULT_TEXT);
                const out = await pipe.model.generate({ ...inputs, max_new_tokens: n, min_new_tokens: n, do_sample: false });
                const prompt = inputs.input_ids.tolist()[0].map(Number);
                const all = out.tolist()[0].map(Number);
                const texts = await call(opts.text ?? DEFAULT_TEXT, { max_new_tokens: n, min_new_tokens: n, do_sample: false });
                result = { prompt_ids: prompt, generated_ids: all.slice(prompt.length), generated_text: texts[0].generated_text };
                break;
            }
            case 'feature-extraction': {
                const out = await call(opts.text ?? DEFAULT_TEXT, { pooling: opts.pooling ?? 'none', normalize: opts.normalize ?? false });
                result = { dims: Array.from(out.dims), first: Array.from(out.data.slice(0, 4), Number), data: Array.from(out.data, Number) };
                break;
            }
            case 'image-classification':
            case 'object-detection':
                result = await runVision(pipe, call, kind, generatedImage(RawImage, opts.image ?? DEFAULT_IMAGE));
                break;
            case 'audio-classification':
            case 'automatic-speech-recognition':
                result = await runAudio(pipe, call, kind, generatedWaveform(Number(opts.samples ?? DEFAULT_SAMPLES)));
                break;
            case 'text-to-audio': {
                // The waveform comes from noise the model draws (VITS): its length and values differ per call.
                const out = await call(opts.text ?? DEFAULT_TEXT);
                result = { sampling_rate: out.sampling_rate, samples: out.audio.length, finite: out.audio.every(Number.isFinite) };
                break;
            }
            default:
                // A task the table gives a pipeline but this script has no inputs for.
                throw new Error(`no inputs for task "${opts.task}" in ${PROG}.mjs`);
        }
    } finally {
        await pipe.dispose?.();
    }
    // The processor's tensors are for callers that recompute torch's answer; they stay out of `result`,
    // which validate quotes in its message.
    const { pixel_values, input_values, ...answer } = result;
    const processed = pixel_values || input_values ? { pixel_values, input_values } : undefined;
    return { runtime: 'transformers.js', version: env.version, task: opts.task, result: answer, processed, latency_ms: latencyMs };
}

runCli(
    {
        prog: PROG,
        usage,
        options: {
            task: { type: 'string' },
            text: { type: 'string' },
            context: { type: 'string' },
            samples: { type: 'string' },
            image: { type: 'string' },
            'max-new-tokens': { type: 'string' },
            layout: { type: 'string' },
            dtype: { type: 'string' },
            pooling: { type: 'string' },
            normalize: { type: 'boolean' },
        },
        check: (opts) => {
            if (opts.task === undefined) throw new UsageError('missing --task');
            if (opts.layout !== undefined && !['flat', 'hub'].includes(opts.layout)) throw new UsageError('--layout must be flat or hub');
            if (opts.dtype !== undefined && !['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16'].includes(opts.dtype)) {
                throw new UsageError('--dtype must be fp32, fp16, q8, int8, uint8, q4 or q4f16');
            }
            if (!pipelineTasks().includes(opts.task)) throw new UsageError(`unsupported task "${opts.task}"`);
            if ((opts.pooling !== undefined || opts.normalize !== undefined) && taskEntry(opts.task).transformers_js_pipeline !== 'feature-extraction')
                throw new UsageError('--pooling and --normalize are only used by feature-extraction');
            if (opts.pooling !== undefined && !['none', 'mean', 'cls', 'first_token', 'eos', 'last_token'].includes(opts.pooling))
                throw new UsageError('--pooling must be none, mean, cls, first_token, eos or last_token');
            if (opts.context !== undefined && opts.task !== 'question-answering') {
                throw new UsageError('--context is only used by question-answering');
            }
            if (opts.samples !== undefined && !/^[1-9][0-9]*$/.test(opts.samples)) throw new UsageError('--samples must be a positive integer');
            if (opts.image !== undefined && !/^[1-9][0-9]*x[1-9][0-9]*$/.test(opts.image)) throw new UsageError('--image must look like 64x48');
            if (opts['max-new-tokens'] !== undefined && (taskEntry(opts.task).transformers_js_pipeline !== 'text-generation' || !/^[1-9][0-9]*$/.test(opts['max-new-tokens']))) {
                throw new UsageError('--max-new-tokens takes a positive integer, for text-generation only');
            }
        },
    },
    run,
);
