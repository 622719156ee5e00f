// Built against the headers modelexport generated; checks them against the packages at run time.
#include "bert_model.hpp"
#include "vit_model.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>

// The signature is known at compile time.
static_assert(bert::inputs[0].name == "input_ids");
static_assert(bert::outputs[0].name == "logits" && bert::outputs[0].shape[0].symbol == "batch_size");
// Images of any size and channel count (share/tasks.json: pixel_values axes as Optimum's vision configs).
static_assert(vit::inputs[0].name == "pixel_values" && vit::inputs[0].shape[1].symbol == "num_channels");
static_assert(bert::task == "text-classification" && vit::task == "image-classification");

namespace fs = std::filesystem;

static nlohmann::json load(const fs::path& p) { return nlohmann::json::parse(std::ifstream(p)); }

template <class Labels, class Files>
static int check(const fs::path& pkg, std::string_view task, const Labels& labels, std::size_t label_count, const Files& files) {
    int bad = 0;
    auto config = load(pkg / "config.json");
    auto meta = load(pkg / "export_metadata.json");
    if (meta["model"]["task"] != std::string(task)) ++bad, std::cerr << pkg << ": task differs\n";
    if (config["id2label"].size() != label_count) ++bad, std::cerr << pkg << ": label count differs\n";
    for (std::size_t i = 0; i < label_count; ++i)
        if (config["id2label"][std::to_string(i)] != std::string(labels[i])) ++bad, std::cerr << pkg << ": label " << i << " differs\n";
    std::size_t n = 0;
    for (const auto& f : files) {
        ++n;
        if (meta["files"][std::string(f.name)]["sha256"] != std::string(f.sha256)) ++bad, std::cerr << f.name << ": hash differs\n";
    }
    if (n != meta["files"].size()) ++bad, std::cerr << pkg << ": file count differs\n";
    return bad;
}

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    int bad = check(argv[1], bert::task, bert::id2label, bert::label_count, bert::files) +
              check(argv[2], vit::task, vit::id2label, vit::label_count, vit::files);
    std::cout << "bert labels:";
    for (auto l : bert::id2label) std::cout << ' ' << l;
    std::cout << "\n" << (bad ? "bindings DIFFER from the packages\n" : "bindings match the packages\n");
    return bad ? 1 : 0;
}
