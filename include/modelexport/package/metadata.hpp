// modelexport/package/metadata.hpp — export_metadata.json (docs/design.md §9; schema in
// share/export_metadata.schema.json).
//
// Everything here must be reproducible: no wall-clock time, no absolute paths.
// The timestamp is SOURCE_DATE_EPOCH when set, else the fixed 1970-01-01T00:00:00Z
// (see choose_export_time for why not the inputs' mtimes).
#pragma once

#include "modelexport/detail/linkage.hpp"
#include "modelexport/export/sentence_pipeline.hpp"
#include "modelexport/export/source.hpp"
#include "modelexport/onnx/hierarchy.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/package/copier.hpp"
#include "modelexport/tasks.hpp"
#include "modelexport/version.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace modelexport {

using json = nlohmann::json;

/// Seconds since the epoch for the metadata, and where they came from.
struct export_time {
    long long seconds = 0;
    std::string origin;  ///< "SOURCE_DATE_EPOCH" or "fixed"
};

/// The latest second iso8601 can write with a four-digit year (9999-12-31T23:59:59Z).
inline constexpr long long max_export_seconds = 253402300799;

/// SOURCE_DATE_EPOCH's value as seconds: decimal digits only, no sign, no spaces,
/// at most max_export_seconds. Anything else is refused rather than guessed at.
inline long long parse_source_date_epoch(std::string_view text) {
    long long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    std::string shown = "'" + std::string(text) + "'";
    if (ec == std::errc::result_out_of_range ||
        (ec == std::errc() && end == text.data() + text.size() && v > max_export_seconds))
        throw usage_error("SOURCE_DATE_EPOCH",
                          shown + " is too large (at most " + std::to_string(max_export_seconds) + ", the year 9999)");
    if (ec != std::errc() || end != text.data() + text.size() || text.front() == '-')
        throw usage_error("SOURCE_DATE_EPOCH", "must be seconds since 1970 as decimal digits, got " + shown);
    return v;
}

/// The metadata's timestamp: SOURCE_DATE_EPOCH when set, else 0 (1970-01-01T00:00:00Z).
///
/// Not the inputs' modification times: an mtime is not content. A git checkout, a
/// copy, an unpacked archive or a rebuilt tool gives identical files new mtimes, so a
/// timestamp taken from them makes identical sources export to different packages in
/// two build directories or on two machines. A fixed, documented value keeps
/// identical sources byte-identical whatever built the tool and when; a build that
/// wants a meaningful date sets SOURCE_DATE_EPOCH (reproducible-builds.org practice).
inline export_time choose_export_time() {
    if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde && *sde)
        return {parse_source_date_epoch(sde), "SOURCE_DATE_EPOCH"};
    return {0, "fixed"};
}

inline std::string iso8601(long long seconds) {
    std::time_t t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/// One ONNX file's part of the metadata: its signature, modules (tag, order), node tags, statistics.
struct model_section {
    std::string
        file;  ///< the file's name ("encoder_model.onnx"), whatever the layout; `layout.onnx_files` has its path
    const signature* sig = nullptr;
    const std::vector<traced_module>* modules = nullptr;
    const projection* proj = nullptr;
};

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
    std::string onnx_exporter;                       ///< which torch exporter wrote the ONNX (htp only)
    std::string signature_source;                    ///< "optimum" or "task table" (htp only)
    sentence_pipeline pipeline;                      ///< --library sentence-transformers: model.sentence_transformers
    json reference_check = {{"status", "not_run"}};  ///< the comparison with torch (export/reference_check.hpp)
    std::vector<model_section> models;    ///< several ONNX files: each one's section (the top level is the first's)
    std::string layout = "flat";          ///< "flat" or "hub" (package/layout.hpp)
    std::vector<std::string> onnx_files;  ///< every ONNX file's package-relative path, the primary first
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
    std::size_t tagged =
        p.tags.size() - static_cast<std::size_t>(std::count(p.tags.begin(), p.tags.end(), std::string()));
    return {{"node_count", p.tags.size()},
            {"tagged_nodes", tagged},
            {"direct_matches", p.count(match_kind::direct)},
            {"parent_matches", p.count(match_kind::parent)},
            {"neighbour_matches", p.count(match_kind::neighbour)},
            {"root_matches", p.count(match_kind::root)},
            {"coverage", p.coverage()},
            {"module_types", types}};
}

inline json modules_json(const std::vector<traced_module>* modules, const projection* proj) {
    json out = json::object();
    if (modules)
        for (const auto& m : *modules) {
            json entry{{"class_name", m.class_name},
                       {"torch_module", m.torch_module},
                       {"traced_tag", proj ? proj->module_tags.at(m.path) : ""}};
            entry["execution_order"] = m.order ? json(*m.order) : json(nullptr);
            out[m.path] = entry;
        }
    return out;
}

inline json nodes_json(const projection* proj) {
    json nodes = json::object();
    if (proj)
        for (std::size_t i = 0; i < proj->tags.size(); ++i) nodes[proj->node_keys[i]] = proj->tags[i];
    return nodes;
}

/// A multi-file package's `models`: per ONNX file, what the top level says of the primary one.
inline json models_json(const std::vector<model_section>& sections) {
    json out = json::object();
    for (const auto& s : sections)
        out[s.file] = {{"signature", s.sig ? to_json(*s.sig) : json::object()},
                       {"modules", modules_json(s.modules, s.proj)},
                       {"nodes", nodes_json(s.proj)},
                       {"statistics", s.proj && s.modules ? statistics_json(*s.proj, *s.modules) : json::object()}};
    return out;
}

MODELEXPORT_ENTRY json build_metadata(const metadata_inputs& in);

#if MODELEXPORT_DEFINES(PACKAGE)
MODELEXPORT_ENTRY json build_metadata(const metadata_inputs& in) {
    json files = json::object();
    for (const auto& f : in.files)
        files[f.name] = {{"size", f.size}, {"sha256", f.sha256}, {"role", std::string(to_string(f.role))}};
    json modules = modules_json(in.modules, in.proj);
    json nodes = nodes_json(in.proj);
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
          {"torch_version", in.torch_version.empty() ? json(nullptr) : json(in.torch_version)},
          {"onnx_exporter", in.onnx_exporter.empty() ? json(nullptr) : json(in.onnx_exporter)},
          {"signature_source", in.signature_source.empty() ? json(nullptr) : json(in.signature_source)}}},
        {"reference_check", in.reference_check},
        {"source", source_json(*in.source)},
        {"model",
         {{"class", cls},
          {"model_type", cfg.value("model_type", "")},
          {"task", in.task},
          {"optimum_class", in.optimum_class},
          {"parameters", in.parameters},
          {"parameters_origin", in.parameters_origin}}},
        {"files", files},
        {"layout", {{"name", in.layout}, {"onnx_files", in.onnx_files}}},
        {"signature", in.sig ? to_json(*in.sig) : json::object()},
        {"modules", modules},
        {"nodes", nodes},
        {"statistics", in.proj && in.modules ? statistics_json(*in.proj, *in.modules) : json::object()},
    };
    if (!in.pipeline.empty()) doc["model"]["sentence_transformers"] = in.pipeline.to_json();
    if (in.models.size() > 1) doc["models"] = models_json(in.models);  // a single-file package's document is unchanged
    return doc;
}
#endif

}  // namespace modelexport
