// libFuzzer target: the checks modelexport applies to a source's JSON files
// before copying them (detail/json_file.hpp, package/copier.hpp), and what export reads
// from the exporter's module table (onnx/hierarchy.hpp).
//
// Any exception other than modelexport::error escaping a check is a bug
// (the CLI would report it as "internal", exit 1), so it is left uncaught and
// libFuzzer reports it as a crash.
#include "modelexport/detail/json_file.hpp"
#include "modelexport/onnx/hierarchy.hpp"
#include "modelexport/package/copier.hpp"
#include "modelexport/tasks.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace me = modelexport;

namespace {

std::size_t depth(const me::json& j) {
    std::size_t d = 0;
    if (j.is_structured())
        for (const auto& v : j) d = std::max(d, depth(v));
    return j.is_structured() ? d + 1 : 0;
}

void require(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    me::json doc;
    try {
        doc = me::parse_json_text(text, "config.json");
    } catch (const me::error& e) {
        require(e.code() == me::exit_code::invalid_input);
        return 0;
    }
    // Accepted documents are within the limits the SAX pass promised.
    require(depth(doc) <= me::json_limits{}.max_depth);
    // Canonical output never throws, even for strings that are not UTF-8.
    std::string canonical = me::to_canonical_text(doc);
    require(!canonical.empty() && canonical.back() == '\n');
    if (!doc.is_object()) return 0;

    // copy_model_config: a string model_type.
    auto mt = doc.find("model_type");
    std::string model_type = mt != doc.end() && mt->is_string() ? mt->get<std::string>() : "";
    // resolve_task: the task from "architectures".
    if (doc.contains("architectures") && doc["architectures"].is_array())
        for (const auto& a : doc["architectures"])
            if (a.is_string())
                if (const auto* t = me::task_for_architecture(a.get<std::string>(), model_type))
                    require(me::find_task(std::string(t->name)) == t);
    // tokenizer_config.json: "*_file" keys must stay inside the source.
    try {
        me::detail::check_tokenizer_config_object(doc, "tokenizer_config.json");
        for (const auto& [key, value] : doc.items())
            if (key.size() > 5 && key.compare(key.size() - 5, 5, "_file") == 0 && value.is_string()) {
                me::fs::path p = value.get<std::string>();
                require(!p.is_absolute());
                for (const auto& part : p) require(part != "..");
            }
    } catch (const me::error& e) {
        require(e.code() == me::exit_code::invalid_input);
    }
    // The exporter's module table: export turns any exception into "unusable module
    // table"; the projection itself must accept whatever the table holds.
    if (doc.contains("modules")) {
        std::vector<me::traced_module> modules;
        try {
            modules = me::traced_modules_from_json(doc);
        } catch (const std::exception&) {
            return 0;
        }
        std::vector<me::node_view> nodes;
        for (const auto& m : modules) {
            std::string scope = m.path;
            for (char& c : scope)
                if (c == '.') c = '/';
            nodes.push_back({"/" + scope + "/MatMul", "MatMul", {m.path + ".weight"}, {m.path + ".out"}});
            nodes.push_back({"", "Constant", {}, {m.path + ".weight"}});
            nodes.push_back({"", "Identity", {}, {m.path + ".bias"}});
        }
        for (bool torch_modules : {false, true}) {
            auto p = me::project_hierarchy(nodes, modules, "FuzzModel", torch_modules);
            require(p.tags.size() == nodes.size() && p.node_keys.size() == nodes.size());
            require(p.coverage() == 100.0);
            for (const auto& t : p.tags) require(!t.empty() && t.front() == '/');
        }
    }
    return 0;
}
