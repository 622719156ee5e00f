// seq2seq_checks.hpp: an encoder-decoder package's files against each other and config.json.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/seq2seq_checks.hpp"

using namespace modelexport;

namespace {
tensor_info tensor(const std::string& name, std::int64_t width) {
    tensor_info t;
    t.name = name;
    t.shape = {std::string("batch_size"), std::string("sequence_length"), width};
    t.has_shape = true;
    return t;
}

std::map<std::string, signature> package(std::int64_t decoder_width, int layers) {
    signature enc{{tensor("input_ids", 1)}, {tensor("last_hidden_state", 32)}};
    signature dec{{tensor("input_ids", 1), tensor("encoder_hidden_states", decoder_width)}, {tensor("logits", 99)}};
    for (int i = 0; i < layers; ++i) {
        dec.outputs.push_back(tensor("present." + std::to_string(i) + ".decoder.key", 8));
        dec.outputs.push_back(tensor("present." + std::to_string(i) + ".encoder.key", 8));
    }
    return {{"encoder_model.onnx", enc}, {"decoder_model.onnx", dec}};
}
}  // namespace

TEST_CASE("the cross-file contract: widths and layer counts") {
    nlohmann::json config{{"num_layers", 2}};
    CHECK(seq2seq_contract_problem(package(32, 2), config).empty());
    CHECK(seq2seq_contract_problem(package(16, 2), config).find("encoder_hidden_states has width 16") != std::string::npos);
    CHECK(seq2seq_contract_problem(package(32, 1), config).find("config.json states 2") != std::string::npos);
    CHECK(seq2seq_contract_problem(package(32, 3), {{"decoder_layers", 3}, {"num_layers", 2}}).empty());  // decoder_layers first
}

TEST_CASE("each file's role needs its names") {
    auto p = package(32, 1);
    CHECK(seq2seq_file_problem("encoder_model.onnx", p["encoder_model.onnx"]).empty());
    CHECK(seq2seq_file_problem("decoder_model.onnx", p["decoder_model.onnx"]).empty());
    CHECK(seq2seq_file_problem("decoder_model_merged.onnx", p["decoder_model.onnx"]) == "has no input use_cache_branch");
    CHECK(seq2seq_file_problem("encoder_model.onnx", p["decoder_model.onnx"]) == "has no output last_hidden_state");
}
