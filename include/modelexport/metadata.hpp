// modelexport/metadata.hpp — export_metadata.json (docs/design.md §9; schema in
// share/export_metadata.schema.json).
//
// Everything here must be reproducible: no wall-clock time, no absolute paths.
// The timestamp is SOURCE_DATE_EPOCH when set, else the newest modification
// time among the inputs, so two exports of the same files are byte-identical.
#pragma once

#include "modelexport/copier.hpp"
#include "modelexport/hierarchy.hpp"
#include "modelexport/onnx_model.hpp"
#include "modelexport/source.hpp"
#include "modelexport/tasks.hpp"
#include "modelexport/version.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace modelexport {

using json = nlohmann::json;

/// Seconds since the epoch for the metadata, and where they came from.
struct export_time {
    long long seconds = 0;
    std::string origin;  ///< "SOURCE_DATE_EPOCH" or "inputs"
};

inline export_time choose_export_time(const std::vector<fs::path>& inputs) {
    if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde && *sde) {
        char* end = nullptr;
        long long v = std::strtoll(sde, &end, 10);
        if (end && *end == '\0' && v >= 0) return {v, "SOURCE_DATE_EPOCH"};
        throw usage_error("SOURCE_DATE_EPOCH", "must be a non-negative integer, got '" + std::string(sde) + "'");
    }
    export_time t{0, "inputs"};
    for (const auto& p : inputs) {
        std::error_code ec;
        auto ft = fs::last_write_time(p, ec);
        if (ec) continue;
        auto sys = std::chrono::time_point_cast<std::chrono::seconds>(ft - fs::file_time_type::clock::now() + std::chrono::system_clock::now());
        t.seconds = std::max<long long>(t.seconds, sys.time_since_epoch().count());
    }
    return t;
}

inline std::string iso8601(long long seconds) {
    std::time_t t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/// Everything the metadata is made of.
struct metadata_inputs {
    std::string strategy;
    export_time time;
    bool embed_hierarchy = false;
    const model_source* source = nullptr;
    const json* config = nullptr;
    std::string task;
    std::string optimum_class;
    long long parameters = 0;
    std::string parameters_origin;  ///< "torch" or "onnx initializers"
    std::vector<copied_file> files;
    const signature* sig = nullptr;
    const std::vector<traced_module>* modules = nullptr;
    const projection* proj = nullptr;
    std::string torch_version;
};

inline json source_json(const model_source& s) {
    json j{{"kind", s.from_cache() ? "hub_cache" : "local"}};
    if (s.from_cache()) {
        j["id"] = s.spec.substr(0, s.spec.find('@'));
        j["revision"] = s.revision;
        j["commit"] = s.commit;
    } else {
        j["id"] = s.dir.filename().string();  // never an absolute path: packages must be relocatable
    }
    return j;
}

inline json statistics_json(const projection& p, const std::vector<traced_module>& modules) {
    std::map<std::string, int> types;
    for (const auto& m : modules)
        if (!m.class_name.empty()) ++types[m.class_name];
    std::size_t tagged = p.tags.size() - static_cast<std::size_t>(std::count(p.tags.begin(), p.tags.end(), std::string()));
    return {{"node_count", p.tags.size()},
            {"tagged_nodes", tagged},
            {"direct_matches", p.count(match_kind::direct)},
            {"parent_matches", p.count(match_kind::parent)},
            {"neighbour_matches", p.count(match_kind::neighbour)},
            {"root_matches", p.count(match_kind::root)},
            {"coverage", p.coverage()},
            {"module_types", types}};
}

inline json build_metadata(const metadata_inputs& in) {
    json files = json::object();
    for (const auto& f : in.files) files[f.name] = {{"size", f.size}, {"sha256", f.sha256}, {"role", std::string(to_string(f.role))}};
    json modules = json::object();
    if (in.modules)
        for (const auto& m : *in.modules) {
            json entry{{"class_name", m.class_name}, {"torch_module", m.torch_module},
                       {"traced_tag", in.proj ? in.proj->module_tags.at(m.path) : ""}};
            entry["execution_order"] = m.order ? json(*m.order) : json(nullptr);
            modules[m.path] = entry;
        }
    json nodes = json::object();
    if (in.proj)
        for (std::size_t i = 0; i < in.proj->tags.size(); ++i) nodes[in.proj->node_keys[i]] = in.proj->tags[i];
    const json& cfg = *in.config;
    std::string cls = model_class(cfg);
    json doc{
        {"format_version", 1},
        {"export_context",
         {{"tool", "modelexport"},
          {"version", version},
          {"strategy", in.strategy},
          {"timestamp", iso8601(in.time.seconds)},
          {"timestamp_origin", in.time.origin},
          {"embed_hierarchy", in.embed_hierarchy},
          {"torch_version", in.torch_version.empty() ? json(nullptr) : json(in.torch_version)}}},
        {"source", source_json(*in.source)},
        {"model",
         {{"class", cls},
          {"model_type", cfg.value("model_type", "")},
          {"task", in.task},
          {"optimum_class", in.optimum_class},
          {"parameters", in.parameters},
          {"parameters_origin", in.parameters_origin}}},
        {"files", files},
        {"signature", in.sig ? to_json(*in.sig) : json::object()},
        {"modules", modules},
        {"nodes", nodes},
        {"statistics", in.proj && in.modules ? statistics_json(*in.proj, *in.modules) : json::object()},
    };
    return doc;
}

}  // namespace modelexport
