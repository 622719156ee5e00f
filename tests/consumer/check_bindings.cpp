// Built against the headers modelexport generated; checks them against the packages at run time.
// The files' hashes are in the *_files.hpp headers (signature.cpp uses the names and shapes only).
#include "bert_model_files.hpp"
#include "vit_model_files.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>

int vit_inputs();  // signature.cpp

namespace fs = std::filesystem;

static nlohmann::json load(const fs::path& p) { return nlohmann::json::parse(std::ifstream(p)); }

template <class Labels, class Files>
static int check(const fs::path& pkg, std::string_view task, const Labels& labels, std::size_t label_count,
                 const Files& files) {
    int bad = 0;
    auto config = load(pkg / "config.json");
    auto meta = load(pkg / "export_metadata.json");
    if (meta["model"]["task"] != std::string(task)) ++bad, std::cerr << pkg << ": task differs\n";
    if (config["id2label"].size() != label_count) ++bad, std::cerr << pkg << ": label count differs\n";
    for (std::size_t i = 0; i < label_count; ++i)
        if (config["id2label"][std::to_string(i)] != std::string(labels[i]))
            ++bad, std::cerr << pkg << ": label " << i << " differs\n";
    std::size_t n = 0;
    for (const auto& f : files) {
        ++n;
        if (meta["files"][std::string(f.name)]["sha256"] != std::string(f.sha256))
            ++bad, std::cerr << f.name << ": hash differs\n";
    }
    if (n != meta["files"].size()) ++bad, std::cerr << pkg << ": file count differs\n";
    return bad;
}

int main(int argc, char** argv) {
    if (argc != 3 || vit_inputs() != 1) return 2;  // pixel_values alone
    int bad = check(argv[1], bert::task, bert::id2label, bert::label_count, bert::files) +
              check(argv[2], vit::task, vit::id2label, vit::label_count, vit::files);
    std::cout << "bert labels:";
    for (auto l : bert::id2label) std::cout << ' ' << l;
    std::cout << "\n" << (bad ? "bindings DIFFER from the packages\n" : "bindings match the packages\n");
    return bad ? 1 : 0;
}
