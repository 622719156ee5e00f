// modelexport/seq2seq_checks.hpp — an encoder-decoder package's files against each other and
// against config.json (docs/design.md §5.3): pure functions over signatures, no files.
#pragma once

#include "modelexport/onnx_model.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
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
        {"decoder_model.onnx", {"input_ids", "encoder_hidden_states"}, {"logits", "present.0.decoder.key", "present.0.encoder.key"}},
        {"decoder_with_past_model.onnx", {"input_ids", "past_key_values.0.decoder.key", "past_key_values.0.encoder.key"},
         {"logits", "present.0.decoder.key"}},
        {"decoder_model_merged.onnx", {"input_ids", "encoder_hidden_states", "use_cache_branch", "past_key_values.0.decoder.key"},
         {"logits", "present.0.decoder.key", "present.0.encoder.key"}},
    };
    return c;
}

namespace detail {
inline bool has_input(const signature& s, const std::string& name) {
    return std::any_of(s.inputs.begin(), s.inputs.end(), [&](const tensor_info& t) { return t.name == name; });
}

/// The decoder's layer count config.json states (T5: num_decoder_layers, else num_layers; BART, Whisper: decoder_layers), or -1.
inline std::int64_t config_decoder_layers(const nlohmann::json& config) {
    for (const char* key : {"decoder_layers", "num_decoder_layers", "num_layers"})
        if (auto it = config.find(key); it != config.end() && it->is_number_integer()) return it->get<std::int64_t>();
    return -1;
}
}  // namespace detail

/// What file `name`'s signature lacks for its role in the package, or "".
inline std::string seq2seq_file_problem(const std::string& name, const signature& sig) {
    for (const auto& c : seq2seq_contracts()) {
        if (name != c.file) continue;
        for (const char* in : c.inputs)
            if (!detail::has_input(sig, in)) return "has no input " + std::string(in);
        for (const char* out : c.outputs)
            if (!sig.output(out)) return "has no output " + std::string(out);
    }
    return "";
}

/// The cross-file contract: the encoder's last_hidden_state width is the decoder's
/// encoder_hidden_states width, and every decoder has one present.{i}.decoder.key per layer config.json states.
inline std::string seq2seq_contract_problem(const std::map<std::string, signature>& sigs, const nlohmann::json& config) {
    auto enc = sigs.find("encoder_model.onnx");
    if (enc == sigs.end() || !enc->second.output("last_hidden_state")) return "encoder_model.onnx has no last_hidden_state";
    const tensor_info& hidden = *enc->second.output("last_hidden_state");
    std::int64_t width = hidden.fixed_dim(hidden.shape.empty() ? 0 : hidden.shape.size() - 1);
    std::int64_t layers = detail::config_decoder_layers(config);
    for (const auto& [name, sig] : sigs) {
        if (name == "encoder_model.onnx") continue;
        for (const auto& in : sig.inputs)
            if (in.name == "encoder_hidden_states") {
                std::int64_t w = in.fixed_dim(in.shape.empty() ? 0 : in.shape.size() - 1);
                if (w >= 0 && width >= 0 && w != width)
                    return name + ": encoder_hidden_states has width " + std::to_string(w) + " but the encoder's last_hidden_state " +
                           std::to_string(width);
            }
        std::int64_t present = std::count_if(sig.outputs.begin(), sig.outputs.end(), [](const tensor_info& t) {
            return t.name.rfind("present.", 0) == 0 && t.name.size() > 12 && t.name.compare(t.name.size() - 12, 12, ".decoder.key") == 0;
        });
        if (layers >= 0 && present != layers)
            return name + ": " + std::to_string(present) + " decoder layers (present.{i}.decoder.key) but config.json states " +
                   std::to_string(layers);
    }
    return "";
}

}  // namespace modelexport
