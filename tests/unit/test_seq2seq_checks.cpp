// validate/seq2seq_checks.hpp: an encoder-decoder package's files against each other and config.json.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/validate/seq2seq_checks.hpp"

using namespace modelexport;

namespace {
tensor_info tensor(const std::string& name, std::int64_t width) {
    tensor_info t;
    t.name = name;
    t.shape = {std::string("batch_size"), std::string("sequence_length"), width};
    t.has_shape = true;
    return t;
}

tensor_info cache(const std::string& name, std::int64_t heads, std::int64_t head_dim) {
    tensor_info t;
    t.name = name;
    t.shape = {std::string("batch_size"), heads, std::string("past_decoder_sequence_length"), head_dim};
    t.has_shape = true;
    return t;
}

/// encoder width 32; a decoder with `layers` layers of `heads` x `head_dim` caches.
std::map<std::string, signature> package(std::int64_t decoder_width, int layers, std::int64_t heads = 4,
                                         std::int64_t head_dim = 8) {
    signature enc{{tensor("input_ids", 1)}, {tensor("last_hidden_state", 32)}};
    signature dec{{tensor("input_ids", 1), tensor("encoder_hidden_states", decoder_width)}, {tensor("logits", 99)}};
    for (int i = 0; i < layers; ++i) {
        dec.outputs.push_back(cache("present." + std::to_string(i) + ".decoder.key", heads, head_dim));
        dec.outputs.push_back(cache("present." + std::to_string(i) + ".encoder.key", heads, head_dim));
    }
    return {{"encoder_model.onnx", enc}, {"decoder_model.onnx", dec}};
}
}  // namespace

TEST_CASE("the cross-file contract: widths and layer counts") {
    nlohmann::json config{{"num_layers", 2}};
    CHECK(seq2seq_contract_problem(package(32, 2), config).empty());
    CHECK(seq2seq_contract_problem(package(16, 2), config).find("encoder_hidden_states has width 16") !=
          std::string::npos);
    CHECK(seq2seq_contract_problem(package(32, 1), config).find("config.json states 2") != std::string::npos);
    CHECK(seq2seq_contract_problem(package(32, 3), {{"decoder_layers", 3}, {"num_layers", 2}})
              .empty());  // decoder_layers first
}

TEST_CASE("each family's config keys: T5's num_heads and d_kv, the BART family's and Whisper's decoder_* and d_model") {
    nlohmann::json t5{{"d_model", 32}, {"num_heads", 4}, {"d_kv", 16}, {"num_layers", 3}, {"num_decoder_layers", 2}};
    CHECK(seq2seq_contract_problem(package(32, 2, 4, 16), t5).empty());  // heads * d_kv need not be d_model
    CHECK(seq2seq_contract_problem(package(32, 3, 4, 16), t5).find("3 decoder layers") != std::string::npos);
    CHECK(seq2seq_contract_problem(package(32, 2, 4, 8), t5).find("has 8 per head but config.json states 16") !=
          std::string::npos);
    CHECK(seq2seq_contract_problem(package(32, 2, 2, 16), t5).find("has 2 heads but config.json states 4") !=
          std::string::npos);
    // BART, Marian, Whisper: decoder_layers and decoder_attention_heads, not the encoder's; head dim d_model / heads.
    nlohmann::json bart{{"d_model", 32},
                        {"encoder_layers", 2},
                        {"decoder_layers", 1},
                        {"encoder_attention_heads", 8},
                        {"decoder_attention_heads", 4},
                        {"num_hidden_layers", 2}};
    CHECK(seq2seq_contract_problem(package(32, 1, 4, 8), bart).empty());
    CHECK(seq2seq_contract_problem(package(32, 2, 4, 8), bart).find("config.json states 1") != std::string::npos);
    CHECK(seq2seq_contract_problem(package(32, 1, 8, 4), bart).find("has 8 heads but config.json states 4") !=
          std::string::npos);
    bart["d_model"] = 48;
    CHECK(seq2seq_contract_problem(package(32, 1, 4, 12), bart).find("config.json states 48 (d_model") !=
          std::string::npos);
}

TEST_CASE("a vision encoder-decoder: the decoder's own cache, its geometry from config.json's decoder object") {
    // GPT-2 given cross-attention: present.{i}.key/.value only, n_layer and n_head in "decoder", the width in
    // "encoder".
    signature enc{{tensor("pixel_values", 32)}, {tensor("last_hidden_state", 48)}};
    signature dec{{tensor("input_ids", 1), tensor("encoder_hidden_states", 48)}, {tensor("logits", 99)}};
    for (int i = 0; i < 2; ++i)
        for (const char* kind : {"key", "value"})
            dec.outputs.push_back(cache("present." + std::to_string(i) + "." + kind, 4, 8));
    std::map<std::string, signature> p{{"encoder_model.onnx", enc}, {"decoder_model.onnx", dec}};
    nlohmann::json config{{"encoder", {{"hidden_size", 48}}},
                          {"decoder", {{"n_layer", 2}, {"n_head", 4}, {"n_embd", 32}}}};
    CHECK(keeps_own_cache(dec));
    CHECK(seq2seq_file_problem("decoder_model.onnx", dec).empty());  // no present.{i}.encoder.* in this form
    CHECK(seq2seq_contract_problem(p, config).empty());
    config["decoder"]["n_layer"] = 3;
    CHECK(seq2seq_contract_problem(p, config).find("2 decoder layers (present.{i}.key) but config.json states 3") !=
          std::string::npos);
    config["decoder"]["n_layer"] = 2;
    config["encoder"]["hidden_size"] = 64;
    CHECK(seq2seq_contract_problem(p, config).find("states 64 (d_model, or the encoder's hidden_size)") !=
          std::string::npos);
    dec.outputs.erase(dec.outputs.begin() + 1);  // logits alone: no cache in either form
    CHECK(seq2seq_file_problem("decoder_model.onnx", dec) == "has no output present.0.decoder.key");
}

TEST_CASE("Pix2Struct: the decoder's T5 keys from config.json's text_config, the encoder's width from vision_config") {
    nlohmann::json config{
        {"vision_config", {{"hidden_size", 32}, {"num_hidden_layers", 3}, {"num_attention_heads", 2}}},
        {"text_config", {{"hidden_size", 32}, {"num_layers", 2}, {"num_heads", 4}, {"d_kv", 16}}}};
    CHECK(seq2seq_contract_problem(package(32, 2, 4, 16), config).empty());  // heads * d_kv need not be hidden_size
    CHECK(seq2seq_contract_problem(package(32, 3, 4, 16), config).find("3 decoder layers") != std::string::npos);
    CHECK(seq2seq_contract_problem(package(32, 2, 4, 8), config).find("has 8 per head but config.json states 16") !=
          std::string::npos);
    CHECK(seq2seq_contract_problem(package(32, 2, 2, 16), config).find("has 2 heads but config.json states 4") !=
          std::string::npos);
    config["vision_config"]["hidden_size"] = 48;
    CHECK(seq2seq_contract_problem(package(32, 2, 4, 16), config)
              .find("states 48 (d_model, or the encoder's hidden_size)") != std::string::npos);
}

TEST_CASE("each file's role needs its names") {
    auto p = package(32, 1);
    CHECK(seq2seq_file_problem("encoder_model.onnx", p["encoder_model.onnx"]).empty());
    CHECK(seq2seq_file_problem("decoder_model.onnx", p["decoder_model.onnx"]).empty());
    CHECK(seq2seq_file_problem("decoder_model_merged.onnx", p["decoder_model.onnx"]) ==
          "has no input use_cache_branch");
    CHECK(seq2seq_file_problem("encoder_model.onnx", p["decoder_model.onnx"]) == "has no output last_hidden_state");
}

TEST_CASE("MusicGen: the text encoder is the primary file, and the files beside the decoders hold no cache") {
    // Its config.json: "text_encoder" (T5: d_model) and "decoder" (num_hidden_layers, num_attention_heads,
    // hidden_size); encodec_decode and build_delay_pattern_mask have no present output to count.
    std::map<std::string, signature> files = package(32, 2);
    files["text_encoder.onnx"] = files["encoder_model.onnx"];
    files.erase("encoder_model.onnx");
    files["encodec_decode.onnx"] = signature{{tensor("audio_codes", 1)}, {tensor("audio_values", 1)}};
    files["build_delay_pattern_mask.onnx"] =
        signature{{tensor("input_ids", 1), tensor("pad_token_id", 1), tensor("max_length", 1)},
                  {tensor("input_ids_edited", 1), tensor("delay_pattern_mask", 1)}};
    nlohmann::json config{{"text_encoder", {{"d_model", 32}}},
                          {"decoder", {{"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"hidden_size", 32}}}};
    CHECK(seq2seq_contract_problem(files, config, true, "text_encoder.onnx").empty());
    CHECK(seq2seq_contract_problem(files, config).find("encoder_model.onnx has no last_hidden_state") !=
          std::string::npos);
    config["decoder"]["num_hidden_layers"] = 3;
    CHECK(seq2seq_contract_problem(files, config, true, "text_encoder.onnx")
              .find("decoder_model.onnx: 2 decoder layers") != std::string::npos);
    config["text_encoder"]["d_model"] = 48;
    CHECK(seq2seq_contract_problem(files, config, true, "text_encoder.onnx")
              .find("text_encoder.onnx: last_hidden_state has width 32") != std::string::npos);
    CHECK(seq2seq_file_problem("encodec_decode.onnx", signature{{tensor("audio_codes", 1)}, {}}) ==
          "has no output audio_values");
    CHECK(seq2seq_file_problem("build_delay_pattern_mask.onnx", files["build_delay_pattern_mask.onnx"]).empty());
}
