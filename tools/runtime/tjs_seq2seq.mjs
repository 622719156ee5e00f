#!/usr/bin/env node
// tjs_seq2seq.mjs: run a transformers.js encoder-decoder pipeline on a package directory, fully
// offline, and print the result as one JSON line on stdout.
//
// Usage: node tjs_seq2seq.mjs PKGDIR --task text2text-generation|automatic-speech-recognition|image-to-text|text-to-audio
//                              [--text T] [--samples N] [--max-new-tokens N] [--subfolder S]
//                              [--language L] [--speech-task transcribe|translate]
//
// transformers.js loads an encoder-decoder as two sessions, PKGDIR/<subfolder>/encoder_model.onnx and
// PKGDIR/<subfolder>/decoder_model_merged.onnx (it ignores model_file_name for these model types),
// with config.json, generation_config.json, the tokenizer and (speech) preprocessor_config.json from
// PKGDIR itself. --subfolder defaults to "onnx", transformers.js' own default (the Hub layout);
// pass --subfolder "" for a flat package.
//
// text-to-audio is MusicGen's: text_encoder.onnx, decoder_model_merged.onnx and encodec_decode.onnx, driven by
// generate() (its pipeline cannot), the answer the waveform's shape and first samples.
//
// Generation is greedy (do_sample: false) for --max-new-tokens tokens (default 10). The answer holds
// the model's generate() ids (decoder prompt and new tokens) and the pipeline's text. Speech gets
// the generated waveform float32(sin(0.05 i)) of --samples samples (default 12345), as
// tjs_pipeline.mjs makes it, and language/task (default en / transcribe) as Whisper's generate()
// takes them; "processed" holds the first 8 frames of every mel bin of the processor's
// input_features, so a caller can check the feature extractor against transformers'. An image is a
// generated IMAGE_SIDE x IMAGE_SIDE RGB pattern, which the package's image processor resizes.
//
// Exit codes: 0 success, 1 load/run failure (message on stderr), 2 usage error, 3 the runtime cannot
// start (transformers.js or the task table cannot be loaded; cli.mjs).

import fs from 'node:fs';
import path from 'node:path';

import { UsageError, importRuntime, runCli } from './cli.mjs';

const PROG = 'tjs_seq2seq';
const TASKS = ['text2text-generation', 'automatic-speech-recognition', 'image-to-text', 'text-to-audio'];
// The files transformers.js loads per task (its session config): an encoder-decoder's two, MusicGen's three.
const SESSION_FILES = {
    'text-to-audio': ['text_encoder.onnx', 'decoder_model_merged.onnx', 'encodec_decode.onnx'],
};
const ENCODER_DECODER_FILES = ['encoder_model.onnx', 'decoder_model_merged.onnx'];
const USAGE = `usage: ${PROG}.mjs PKGDIR --task ${TASKS.join('|')} [--text T] [--samples N] [--max-new-tokens N] [--subfolder S] [--language L] [--speech-task T]`;
const DEFAULT_TEXT = 'translate english to onnx: the quick brown fox';
const DEFAULT_SAMPLES = 12345;
const DEFAULT_NEW_TOKENS = 10;
const FEATURE_FRAMES = 8;
const IMAGE_SIDE = 48;

function generatedImage(RawImage) {
    const data = new Uint8ClampedArray(IMAGE_SIDE * IMAGE_SIDE * 3);
    for (let i = 0; i < data.length; ++i) data[i] = (i * 7 + Math.floor(i / (3 * IMAGE_SIDE)) * 13) % 256;
    return new RawImage(data, IMAGE_SIDE, IMAGE_SIDE, 3);
}

function generatedWaveform(samples) {
    const out = new Float32Array(samples);
    for (let i = 0; i < samples; ++i) out[i] = Math.sin(0.05 * i);
    return out;
}

// features [1, bins, frames] -> the first `frames` of every bin, bin-major.
function featureHead(features, frames) {
    const [, bins, total] = features.dims;
    const out = [];
    for (let b = 0; b < bins; ++b)
        for (let f = 0; f < frames; ++f) out.push(Number(features.data[b * total + f]));
    return out;
}

async function run(opts) {
    const { pipeline, env, RawImage } = await importRuntime('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = ''; // an absolute directory is the model id
    env.useFSCache = false;
    env.useBrowserCache = false;

    const pkgDir = path.resolve(opts.pkgDir);
    if (!fs.statSync(pkgDir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`package directory not found: ${pkgDir}`);
    const subfolder = opts.subfolder ?? 'onnx';
    const loaded = SESSION_FILES[opts.task] ?? ENCODER_DECODER_FILES;
    for (const name of loaded) {
        const file = path.join(pkgDir, subfolder, name);
        if (!fs.existsSync(file)) throw new Error(`file not found: ${file} (transformers.js loads ${loaded.join(', ')})`);
    }
    // Without --subfolder no file option is passed: the library's own default ('onnx') finds a hub
    // package, as a user's pipeline(task, dir) would.
    const files = opts.subfolder === undefined ? {} : { subfolder };
    const pipe = await pipeline(opts.task, pkgDir, { local_files_only: true, ...files, dtype: 'fp32', device: 'cpu' });
    const n = Number(opts['max-new-tokens'] ?? DEFAULT_NEW_TOKENS);
    // The processor's features are for callers that check the feature extractor; they stay out of
    // `result`, which validate quotes in its message.
    let result, processed;
    try {
        if (opts.task === 'text2text-generation') {
            const text = opts.text ?? DEFAULT_TEXT;
            const inputs = pipe.tokenizer(text);
            const out = await pipe.model.generate({ ...inputs, max_new_tokens: n, do_sample: false });
            const [answer] = await pipe(text, { max_new_tokens: n, do_sample: false });
            result = {
                input_ids: inputs.input_ids.tolist()[0].map(Number),
                sequence: out.tolist()[0].map(Number),
                generated_text: answer.generated_text,
            };
        } else if (opts.task === 'text-to-audio') {
            // MusicGen: its pipeline cannot drive the generation loop; a user calls generate(), which decodes the
            // codes with encodec_decode (transformers.js' own example). Greedy, without guidance, so reproducible.
            const text = opts.text ?? DEFAULT_TEXT;
            const inputs = pipe.tokenizer(text);
            const audio = await pipe.model.generate({ ...inputs, max_new_tokens: n, do_sample: false, guidance_scale: 1 });
            result = {
                input_ids: inputs.input_ids.tolist()[0].map(Number),
                audio_shape: Array.from(audio.dims),
                audio_head: Array.from(audio.data.slice(0, 8), Number),
            };
        } else if (opts.task === 'image-to-text') {
            const image = generatedImage(RawImage);
            const { pixel_values } = await pipe.processor(image);
            const out = await pipe.model.generate({ inputs: pixel_values, max_new_tokens: n, do_sample: false });
            const [answer] = await pipe(image, { max_new_tokens: n, do_sample: false });
            result = { sequence: out.tolist()[0].map(Number), generated_text: answer.generated_text };
        } else {
            const wave = generatedWaveform(Number(opts.samples ?? DEFAULT_SAMPLES));
            const features = await pipe.processor(wave);
            const { input_features } = features;
            // Whisper takes a language and a task; a model fed the waveform itself (Moonshine: input_values) neither.
            const whisper = input_features && pipe.model.config.model_type === 'whisper';
            const options = { max_new_tokens: n, do_sample: false };
            if (whisper) Object.assign(options, { language: opts.language ?? 'en', task: opts['speech-task'] ?? 'transcribe' });
            const out = await pipe.model.generate({ ...(input_features ? { inputs: input_features } : features), ...options });
            const answer = await pipe(wave, options);
            result = { sequence: out.tolist()[0].map(Number), text: answer.text };
            if (input_features) {
                processed = {
                    input_features_shape: Array.from(input_features.dims),
                    input_features_head: featureHead(input_features, FEATURE_FRAMES),
                };
            }
        }
    } finally {
        await pipe.dispose?.();
    }
    return { runtime: 'transformers.js', version: env.version, task: opts.task, subfolder, result, processed };
}

runCli(
    {
        prog: PROG,
        usage: USAGE,
        options: {
            task: { type: 'string' },
            text: { type: 'string' },
            samples: { type: 'string' },
            'max-new-tokens': { type: 'string' },
            subfolder: { type: 'string' },
            language: { type: 'string' },
            'speech-task': { type: 'string' },
        },
        check: (opts) => {
            if (!TASKS.includes(opts.task)) throw new UsageError(`--task must be one of ${TASKS.join(', ')}`);
            for (const key of ['samples', 'max-new-tokens']) {
                if (opts[key] !== undefined && !/^[1-9][0-9]*$/.test(opts[key])) throw new UsageError(`--${key} must be a positive integer`);
            }
            if (opts.subfolder !== undefined && (opts.subfolder.includes('..') || path.isAbsolute(opts.subfolder))) {
                throw new UsageError('--subfolder must be a relative folder inside PKGDIR');
            }
        },
    },
    run,
);
