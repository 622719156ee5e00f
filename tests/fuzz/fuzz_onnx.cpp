// libFuzzer target: arbitrary bytes as a package's model.onnx.
//
//  1. The validator's path: validate_package() on a package whose model.onnx is
//     the input (the weight-skipping reader, external-data checks, onnx::checker,
//     signature and label checks). It must turn every defect into a failed
//     check, never throw or crash.
//  2. The in-memory path export and inspect use on a parsed ModelProto:
//     graph_signature, external_references + external_reference_problem,
//     node_views + project_hierarchy (scope tags), and the embed_hierarchy_tags
//     round trip through serialisation; onnx::checker::check_model in a
//     try/catch (it throws ValidationError for invalid models).
#include "modelexport/detail/json_file.hpp"
#include "modelexport/onnx/hierarchy.hpp"
#include "modelexport/onnx/hierarchy_embed.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/onnx/project.hpp"
#include "modelexport/validator.hpp"

#include <onnx/checker.h>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

namespace me = modelexport;
namespace fs = std::filesystem;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

/// A package directory with a real config.json; model.onnx is rewritten per input.
const fs::path& package_dir() {
    static const fs::path dir =
        [] {
            fs::path root = fs::temp_directory_path() / ("modelexport-fuzz-onnx-" + std::to_string(::getpid()));
            fs::path d = root / "pkg";
            fs::create_directories(d);
            std::ofstream(d / "config.json")
                << R"({"architectures": ["BertForSequenceClassification"], "model_type": "bert",
            "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}})";
            std::ofstream(d / "vocab.txt") << "[PAD]\n[UNK]\n";
            std::ofstream(d / "model.onnx_data") << std::string(64, '\0');
            std::ofstream(root / "outside.bin") << std::string(64, '\0');
            std::atexit([] {
                std::error_code ec;
                fs::remove_all(fs::temp_directory_path() / ("modelexport-fuzz-onnx-" + std::to_string(::getpid())), ec);
            });
            return d;
        }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fs::path& dir = package_dir();
    {
        std::ofstream out(dir / "model.onnx", std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    // 1. validate: every problem is a check result; the report always serialises.
    me::validation_report report = me::validate_package(dir);
    require(report.find("onnx.parse") != nullptr);
    std::string text = me::to_canonical_text(me::to_json(report, true));
    require(!text.empty());

    // 2. the parsed model
    onnx::ModelProto model;
    if (!model.ParseFromArray(data, static_cast<int>(size)) || !model.has_graph()) return 0;
    const onnx::GraphProto& g = model.graph();
    me::signature sig = me::graph_signature(g);
    me::to_canonical_text(me::to_json(sig));
    for (const auto& ref : me::external_references(model)) {
        std::string problem = me::external_reference_problem(ref, dir);
        // Accepted references name an existing file inside the package.
        if (problem.empty()) {
            fs::path loc = ref.location;
            require(!loc.is_absolute());
            for (const auto& part : loc) require(part != "..");
            require(fs::is_regular_file(dir / loc));
        }
    }
    auto nodes = me::node_views(g);
    me::projection p = me::project_hierarchy(nodes, {}, "FuzzModel");
    require(p.tags.size() == nodes.size() && p.node_keys.size() == nodes.size() && p.coverage() == 100.0);
    for (const auto& t : p.tags) require(t.rfind("/FuzzModel", 0) == 0);
    // Node keys name the metadata's "nodes" entries: one per node, never merged.
    require(std::set<std::string>(p.node_keys.begin(), p.node_keys.end()).size() == nodes.size());

    me::embed_hierarchy_tags(model, p.tags);
    std::string bytes;
    require(model.SerializeToString(&bytes));
    onnx::ModelProto back;
    require(back.ParseFromString(bytes));
    auto tags = me::embedded_hierarchy_tags(back.graph());
    require(tags.size() == p.tags.size());
    for (const auto& [i, t] : tags) require(t == p.tags[static_cast<std::size_t>(i)]);
    // Embedding adds metadata only: the graph's own fields are unchanged.
    require(me::graph_signature(back.graph()).inputs.size() == sig.inputs.size());
    require(back.graph().node_size() == g.node_size());

    try {
        onnx::checker::check_model(model);
    } catch (const std::exception&) {}
    return 0;
}
