// modelexport/validate/seq2seq_checks.hpp — an encoder-decoder package's files against each other and
// against config.json (docs/design.md §5.3): pure functions over signatures, no files.
#pragma once

#include "modelexport/onnx/model.hpp"
#include "modelexport/validate/decoder_checks.hpp"  // detail::config_int (and tasks.hpp's detail::ends_with)

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelexport {

/// The ONNX file of an encoder-decoder package and the names its graph must have.
struct seq2seq_file_contract {
    const char* file;
    std::vector<const char*> inputs, outputs;
};

inline const std::vector<seq2seq_file_contract>& seq2seq_contracts() {
    static const std::vector<seq2seq_file_contract> c{
        {"encoder_model.onnx", {}, {"last_hidden_state"}},
        {"decoder_model.onnx",
         {"input_ids", "encoder_hidden_states"},
         {"logits", "present.0.decoder.key", "present.0.encoder.key"}},
        {"decoder_with_past_model.onnx",
         {"input_ids", "past_key_values.0.decoder.key", "past_key_values.0.encoder.key"},
         {"logits", "present.0.decoder.key"}},
        {"decoder_model_merged.onnx",
         {"input_ids", "encoder_hidden_states", "use_cache_branch", "past_key_values.0.decoder.key"},
         {"logits", "present.0.decoder.key", "present.0.encoder.key"}},
        // MusicGen's text-to-audio: its encoder, the audio codes' decoder, and the delay pattern the generation
        // loop applies to the codes (what transformers.js and Optimum's parts read).
        {"text_encoder.onnx", {}, {"last_hidden_state"}},
        {"encodec_decode.onnx", {"audio_codes"}, {"audio_values"}},
        {"build_delay_pattern_mask.onnx",
         {"input_ids", "pad_token_id", "max_length"},
         {"input_ids_edited", "delay_pattern_mask"}},
    };
    return c;
}

namespace detail {
inline bool has_input(const signature& s, const std::string& name) { return s.input(name) != nullptr; }

/// A cache tensor's name: past_key_values.{i}.{decoder|encoder}.{key|value} or present.{i}....
inline bool is_cache_tensor(const std::string& name) {
    return (name.rfind("past_key_values.", 0) == 0 || name.rfind("present.", 0) == 0) &&
           (ends_with(name, ".key") || ends_with(name, ".value"));
}
}  // namespace detail

/// The decoder's cache geometry as config.json states it, each -1 when it does not. The keys are
/// each family's own (as Optimum's normalized configs and transformers.js read them):
///   layers    decoder_layers (BART, mBART, Marian, M2M100, Pegasus, Whisper), num_decoder_layers
///             (T5, MT5; absent in old T5 configs), else num_layers (T5: the encoder's, which the
///             decoder then shares)
///   heads     decoder_attention_heads (BART family, Whisper), num_heads (T5)
///   head_dim  d_kv (T5: heads * d_kv need not be d_model), else d_model / heads
///   d_model   d_model (every family), hidden_size
/// encoder_layers / num_layers (the encoder's depth) are not in any file's signature: the encoder's
/// graph holds no cache, so they are not checked.
/// A config.json of two configs, each a model's own (VisionEncoderDecoder's "encoder" and "decoder"; Pix2Struct's
/// "vision_config", its encoder, and "text_config", its decoder; MusicGen's "text_encoder" and "decoder") takes the
/// decoder's keys from the decoder's config, whichever family it is (GPT-2's n_layer, TrOCR's decoder_layers, BERT's
/// num_hidden_layers, Pix2Struct's T5-like num_layers, num_heads and d_kv), and the encoder's width (encoder_width)
/// from the encoder's.
struct seq2seq_geometry {
    std::int64_t layers = -1, heads = -1, head_dim = -1, d_model = -1, encoder_width = -1;
};

inline seq2seq_geometry seq2seq_config_geometry(const nlohmann::json& config) {
    seq2seq_geometry g;
    const nlohmann::json *encoder = nullptr, *decoder = nullptr;
    for (auto [encoder_key, decoder_key] : {std::pair{"encoder", "decoder"}, std::pair{"vision_config", "text_config"},
                                            std::pair{"text_encoder", "decoder"}}) {
        auto e = config.find(encoder_key), d = config.find(decoder_key);
        if (e != config.end() && d != config.end() && e->is_object() && d->is_object()) {
            encoder = &*e, decoder = &*d;
            break;
        }
    }
    if (encoder) {
        const nlohmann::json& d = *decoder;
        g.layers = detail::config_int(
            d, {"decoder_layers", "num_decoder_layers", "num_hidden_layers", "n_layer", "num_layers"});
        g.heads = detail::config_int(d, {"decoder_attention_heads", "num_attention_heads", "n_head", "num_heads"});
        g.d_model = detail::config_int(d, {"d_model", "hidden_size", "n_embd"});
        g.head_dim = detail::config_int(d, {"head_dim", "d_kv"});
        g.encoder_width = detail::config_int(*encoder, {"hidden_size", "d_model"});
    } else {
        g.layers = detail::config_int(config, {"decoder_layers", "num_decoder_layers", "num_layers"});
        g.heads = detail::config_int(config, {"decoder_attention_heads", "num_heads"});
        g.d_model = detail::config_int(config, {"d_model", "hidden_size"});
        g.head_dim = detail::config_int(config, {"d_kv"});
        g.encoder_width = g.d_model;
    }
    if (g.head_dim < 0 && g.d_model > 0 && g.heads > 0 && g.d_model % g.heads == 0) g.head_dim = g.d_model / g.heads;
    return g;
}

/// Whether a decoder file keeps its decoder's own cache (past_key_values.{i}.key, self-attention alone)
/// instead of an encoder-decoder cache (past_key_values.{i}.decoder.key and .encoder.key). Optimum
/// exports a vision encoder-decoder so: its decoder is a causal LM given cross-attention (GPT-2, TrOCR,
/// BERT), whose configuration names the cache, and the cross-attention is recomputed at each step.
inline bool keeps_own_cache(const signature& sig) {
    return detail::has_input(sig, "past_key_values.0.key") || sig.output("present.0.key");
}

/// A contract name in the file's cache form: "" for a cross-attention tensor the form does not have.
inline std::string in_cache_form(std::string name, bool own) {
    if (!own || !detail::is_cache_tensor(name)) return name;
    if (name.find(".encoder.") != std::string::npos) return "";
    return name.replace(name.find(".decoder."), 9, ".");
}

/// What file `name`'s signature lacks for its role in the package, or "". Without a cache (Optimum's
/// text2text-generation: `cached` false) the decoder's outputs are its logits alone; `head` is what the
/// decoder returns instead of logits (a base model's last_hidden_state).
inline std::string seq2seq_file_problem(const std::string& name, const signature& sig, bool cached = true,
                                        std::string_view head = "logits") {
    const bool own = keeps_own_cache(sig);
    for (const auto& c : seq2seq_contracts()) {
        if (name != c.file) continue;
        for (const char* contract : c.inputs)
            if (std::string in = in_cache_form(contract, own); !in.empty() && !detail::has_input(sig, in))
                return "has no input " + in;
        for (const char* contract : c.outputs) {
            std::string out = contract == std::string_view("logits") ? std::string(head) : in_cache_form(contract, own);
            if (!out.empty() && (cached || !detail::is_cache_tensor(out)) && !sig.output(out))
                return "has no output " + out;
        }
    }
    return "";
}

/// The cross-file contract, against config.json (seq2seq_config_geometry):
/// - the encoder's (`encoder`, the package's primary file) last_hidden_state width is d_model and the decoders'
///   encoder_hidden_states width;
/// - every decoder (a file with a present output) has one present.{i}.decoder.key per decoder layer (when the
///   package has a cache);
/// - every cache tensor (past_key_values.*, present.*; self- and cross-attention) is
///   [batch, heads, length, head_dim] where its dims are fixed.
inline std::string seq2seq_contract_problem(const std::map<std::string, signature>& sigs, const nlohmann::json& config,
                                            bool cached = true, const std::string& encoder = "encoder_model.onnx") {
    auto enc = sigs.find(encoder);
    if (enc == sigs.end() || !enc->second.output("last_hidden_state")) return encoder + " has no last_hidden_state";
    const tensor_info& hidden = *enc->second.output("last_hidden_state");
    std::int64_t width = hidden.fixed_dim(hidden.shape.empty() ? 0 : hidden.shape.size() - 1);
    const seq2seq_geometry g = seq2seq_config_geometry(config);
    if (width >= 0 && g.encoder_width >= 0 && width != g.encoder_width)
        return encoder + ": last_hidden_state has width " + std::to_string(width) + " but config.json states " +
               std::to_string(g.encoder_width) + " (d_model, or the encoder's hidden_size)";
    auto cache_problem = [&](const std::string& file, const tensor_info& t) -> std::string {
        if (!detail::is_cache_tensor(t.name)) return "";
        if (t.has_shape && t.shape.size() != 4)
            return file + ": " + t.name + " has " + std::to_string(t.shape.size()) + " dims, not 4";
        const std::pair<std::size_t, std::int64_t> wanted[] = {{1, g.heads}, {3, g.head_dim}};
        for (auto [axis, size] : wanted) {
            std::int64_t got = t.fixed_dim(axis);
            if (got >= 0 && size >= 0 && got != size)
                return file + ": " + t.name + " has " + std::to_string(got) + (axis == 1 ? " heads" : " per head") +
                       " but config.json states " + std::to_string(size) +
                       (axis == 1 ? " (decoder_attention_heads / num_heads)" : " (d_kv, else d_model / heads)");
        }
        return "";
    };
    for (const auto& [name, sig] : sigs) {
        if (name == encoder) continue;
        for (const auto& in : sig.inputs) {
            if (in.name == "encoder_hidden_states") {
                std::int64_t w = in.fixed_dim(in.shape.empty() ? 0 : in.shape.size() - 1);
                if (w >= 0 && width >= 0 && w != width)
                    return name + ": encoder_hidden_states has width " + std::to_string(w) +
                           " but the encoder's last_hidden_state " + std::to_string(width);
            }
            if (auto problem = cache_problem(name, in); !problem.empty()) return problem;
        }
        for (const auto& out : sig.outputs)
            if (auto problem = cache_problem(name, out); !problem.empty()) return problem;
        const std::string key = keeps_own_cache(sig) ? ".key" : ".decoder.key";
        std::int64_t present = std::count_if(sig.outputs.begin(), sig.outputs.end(), [&](const tensor_info& t) {
            return t.name.rfind("present.", 0) == 0 && detail::ends_with(t.name, key) &&
                   t.name.find('.', 8) == t.name.size() - key.size();  // present.{i}<key>, nothing between
        });
        const bool decoder = std::any_of(sig.outputs.begin(), sig.outputs.end(),
                                         [](const tensor_info& t) { return t.name.rfind("present.", 0) == 0; });
        if (cached && decoder && g.layers >= 0 && present != g.layers)
            return name + ": " + std::to_string(present) + " decoder layers (present.{i}" + key +
                   ") but config.json states " + std::to_string(g.layers) +
                   " (decoder_layers / num_decoder_layers / num_layers, or the decoder's)";
    }
    return "";
}

}  // namespace modelexport
