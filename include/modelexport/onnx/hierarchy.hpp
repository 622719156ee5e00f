// modelexport/onnx/hierarchy.hpp — Hierarchical Trace-and-Project (docs/design.md §4).
//
// The exporter traces the module tree (dotted path, class, first call order).
// Torch's TorchScript exporter names every ONNX node by the module scope it was
// emitted in ("/bert/encoder/layer.0/attention/self/query/MatMul"). Projection
// maps each node's scope to the deepest traced module and gives it that
// module's tag ("/BertForSequenceClassification/BertModel/BertEncoder/BertLayer.0/...").
//
// Rules (decided here, documented in the README):
//  - modules are keyed by dotted path, never by class name (same-class siblings differ);
//  - plain torch.nn modules (Linear, LayerNorm, ...) are not hierarchy levels unless
//    `include_torch_modules`; containers (ModuleList, Sequential, ...) never are;
//    their nodes take the nearest level's tag;
//  - direct match: the scope is a traced module (or, for the Identity nodes torch
//    adds for merged initializers, the parameter path's module); parent match: the nearest traced
//    ancestor of the scope; neighbour: a node with no scope of its own (empty or
//    root scope constants, casts and identities hoisted by the exporter) takes the tag
//    of its first tagged consumer, else its first tagged producer;
//  - root fallback: anything else gets the root tag. Every node ends with a
//    non-empty tag, so coverage is 100% by construction and checked anyway.
//  - without a trace (prebuilt ONNX), levels are the scope components themselves
//    under a root named after the model class.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace modelexport {

/// One module as the exporter traced it.
struct traced_module {
    std::string path;        ///< dotted path, "" for the root
    std::string class_name;  ///< e.g. "BertLayer"
    bool torch_module = false;
    std::optional<int> order;  ///< first forward call, if it ran
};

/// The minimum of an ONNX node projection needs; built from a GraphProto by node_views() in onnx/project.hpp.
struct node_view {
    std::string name;
    std::string op_type;
    std::vector<std::string> inputs;
    std::vector<std::string> outputs;
};

enum class match_kind { direct, parent, neighbour, root };

struct projection {
    std::vector<std::string> node_keys;  ///< unique, deterministic key per node (name, or op_type_index)
    std::vector<std::string> tags;       ///< tag per node, same order as the graph
    std::vector<match_kind> matches;
    std::map<std::string, std::string> module_tags;  ///< module path -> tag (levels and leaves)
    std::map<std::string, std::size_t> nodes_per_tag;

    std::size_t count(match_kind k) const {
        return static_cast<std::size_t>(std::count(matches.begin(), matches.end(), k));
    }
    double coverage() const {
        if (tags.empty()) return 100.0;
        auto tagged = std::count_if(tags.begin(), tags.end(), [](const std::string& t) { return !t.empty(); });
        return 100.0 * static_cast<double>(tagged) / static_cast<double>(tags.size());
    }
};

namespace detail {

inline std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            parts.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    parts.push_back(cur);
    return parts;
}

inline bool is_index(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

inline std::string parent_path(const std::string& path) {
    auto dot = path.rfind('.');
    return dot == std::string::npos ? std::string() : path.substr(0, dot);
}

/// torch containers only group children; their index already shows in the child's tag.
inline bool is_container(const std::string& cls) {
    return cls == "ModuleList" || cls == "ModuleDict" || cls == "Sequential" || cls == "ParameterList" ||
           cls == "ParameterDict";
}

/// Ops the exporter hoists out of module scopes; they belong to whoever uses them.
inline bool is_scopeless_op(const std::string& op) {
    return op == "Constant" || op == "Cast" || op == "Identity" || op == "ConstantOfShape";
}

/// Without a trace the scope components are the levels: "bert.encoder.layer.0"
/// under "/BertModel" -> "/BertModel/bert/encoder/layer.0" (list indices stay
/// attached to their list, as in traced tags).
inline std::string tag_from_scope(const std::string& root_tag, const std::string& scope) {
    std::string tag = root_tag;
    for (const auto& part : split(scope, '.')) {
        if (part.empty()) continue;
        tag += (is_index(part) ? "." : "/") + part;
    }
    return tag;
}

}  // namespace detail

/// The module scope of a TorchScript-exported node name, as a dotted path:
/// "/bert/encoder/layer.0/attention/self/query/MatMul" -> "bert.encoder.layer.0.attention.self.query".
/// Returns nullopt for names without scope ("Gemm_3", "").
inline std::optional<std::string> scope_of(const std::string& node_name) {
    if (node_name.size() < 2 || node_name.front() != '/') return std::nullopt;
    auto last = node_name.rfind('/');
    std::string scope = node_name.substr(1, last == 0 ? 0 : last - 1);
    std::replace(scope.begin(), scope.end(), '/', '.');
    return scope;
}

/// Tags for every traced module. Non-level modules inherit their nearest level's tag.
inline std::map<std::string, std::string> module_tags(const std::vector<traced_module>& modules,
                                                      bool include_torch_modules) {
    std::unordered_map<std::string, const traced_module*> by_path;
    for (const auto& m : modules) by_path.emplace(m.path, &m);
    std::map<std::string, std::string> tags;
    // Parents come before children in named_modules() order, but sort by depth to not rely on it.
    std::vector<const traced_module*> ordered;
    for (const auto& m : modules) ordered.push_back(&m);
    std::stable_sort(ordered.begin(), ordered.end(), [](const traced_module* a, const traced_module* b) {
        auto depth = [](const std::string& p) { return p.empty() ? 0 : 1 + std::count(p.begin(), p.end(), '.'); };
        return depth(a->path) < depth(b->path);
    });
    for (const auto* m : ordered) {
        if (m->path.empty()) {
            tags[""] = "/" + m->class_name;
            continue;
        }
        std::string parent = detail::parent_path(m->path);
        while (!parent.empty() && !tags.count(parent)) parent = detail::parent_path(parent);
        std::string base = tags.count(parent) ? tags[parent] : "/";
        bool level = !m->torch_module || (include_torch_modules && !detail::is_container(m->class_name));
        if (!level) {
            tags[m->path] = base;
            continue;
        }
        std::string last = m->path.substr(m->path.rfind('.') == std::string::npos ? 0 : m->path.rfind('.') + 1);
        std::string name = m->class_name + (detail::is_index(last) ? "." + last : "");
        tags[m->path] = (base == "/" ? "" : base) + "/" + name;
    }
    return tags;
}

/// Deterministic unique keys: the node name where it is unique and non-empty,
/// else "<op_type>_<graph index>" (never an address).
inline std::vector<std::string> node_keys(const std::vector<node_view>& nodes) {
    std::unordered_map<std::string, int> seen;
    for (const auto& n : nodes) ++seen[n.name];
    std::unordered_set<std::string> used;  // unique names are their own keys; generated keys avoid them
    for (const auto& n : nodes)
        if (!n.name.empty() && seen[n.name] == 1) used.insert(n.name);
    std::vector<std::string> keys;
    keys.reserve(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const auto& n = nodes[i];
        if (!n.name.empty() && seen[n.name] == 1) {
            keys.push_back(n.name);
            continue;
        }
        std::string key = n.op_type + "_" + std::to_string(i);
        while (!used.insert(key).second) key += "_" + std::to_string(i);  // another node is named "Add_4"
        keys.push_back(key);
    }
    return keys;
}

namespace detail {

/// Tags a node that has a module scope: without a trace the scope components are the levels;
/// with one, the deepest traced module (direct) or its nearest traced ancestor (parent).
inline void tag_by_scope(projection& p, std::size_t i, const std::string& scope, bool traced,
                         const std::string& root_tag) {
    if (!traced) {
        p.tags[i] = tag_from_scope(root_tag, scope);
        p.module_tags.emplace(scope, p.tags[i]);
        p.matches[i] = match_kind::direct;
        return;
    }
    std::string path = scope;
    while (!path.empty() && !p.module_tags.count(path)) path = parent_path(path);
    p.tags[i] = p.module_tags.at(path);
    p.matches[i] = path == scope ? match_kind::direct : path.empty() ? match_kind::root : match_kind::parent;
}

/// torch merges equal initializers and re-exposes each through an unnamed Identity whose
/// output is the parameter's dotted path: that names its module. True when it tagged node i.
inline bool tag_parameter_identity(projection& p, std::size_t i, const node_view& n) {
    if (n.op_type != "Identity" || n.outputs.size() != 1 || n.outputs[0].find('.') == std::string::npos) return false;
    auto it = p.module_tags.find(parent_path(n.outputs[0]));
    if (it == p.module_tags.end()) return false;
    p.tags[i] = it->second;
    p.matches[i] = match_kind::direct;
    return true;
}

/// Scopeless nodes take the tag of their first tagged consumer, else producer (neighbour);
/// constants feeding constants resolve over rounds (bounded by the count); the rest get the root.
inline void tag_by_neighbours(projection& p, const std::vector<node_view>& nodes,
                              const std::vector<std::size_t>& scopeless, const std::string& root_tag) {
    std::unordered_map<std::string, std::vector<std::size_t>> consumers;
    std::unordered_map<std::string, std::size_t> producer;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        for (const auto& in : nodes[i].inputs) consumers[in].push_back(i);
        for (const auto& out : nodes[i].outputs) producer.emplace(out, i);
    }
    for (std::size_t round = 0; round < scopeless.size(); ++round) {
        bool changed = false;
        for (std::size_t i : scopeless) {
            if (!p.tags[i].empty()) continue;
            std::string found;
            for (const auto& out : nodes[i].outputs)
                for (std::size_t c : consumers[out])
                    if (found.empty() && !p.tags[c].empty()) found = p.tags[c];
            for (const auto& in : nodes[i].inputs)
                if (auto it = producer.find(in); found.empty() && it != producer.end() && !p.tags[it->second].empty())
                    found = p.tags[it->second];
            if (!found.empty()) {
                p.tags[i] = found;
                p.matches[i] = match_kind::neighbour;
                changed = true;
            }
        }
        if (!changed) break;
    }
    for (std::size_t i : scopeless)
        if (p.tags[i].empty()) {
            p.tags[i] = root_tag;
            p.matches[i] = match_kind::root;
        }
}

}  // namespace detail

/// Projects the traced hierarchy onto the nodes. With `modules` empty there is
/// no trace: scope components become the levels under `root_class`.
inline projection project_hierarchy(const std::vector<node_view>& nodes, std::vector<traced_module> modules,
                                    const std::string& root_class, bool include_torch_modules = false) {
    projection p;
    bool traced = !modules.empty();
    // Without a trace, or with a table that lacks the root entry (a custom exporter's), the
    // root is the model class: every path then has a level above it.
    if (std::none_of(modules.begin(), modules.end(), [](const traced_module& m) { return m.path.empty(); }))
        modules.push_back({"", root_class.empty() ? "Model" : root_class, false, 0});
    p.module_tags = module_tags(modules, include_torch_modules);
    const std::string root_tag = p.module_tags.at("");
    p.node_keys = node_keys(nodes);
    p.tags.assign(nodes.size(), std::string());
    p.matches.assign(nodes.size(), match_kind::root);
    std::vector<std::size_t> scopeless;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        auto scope = scope_of(nodes[i].name);
        if (scope && !(scope->empty() && detail::is_scopeless_op(nodes[i].op_type)))
            detail::tag_by_scope(p, i, *scope, traced, root_tag);
        else if (!(traced && detail::tag_parameter_identity(p, i, nodes[i])))
            scopeless.push_back(i);
    }
    if (!scopeless.empty()) detail::tag_by_neighbours(p, nodes, scopeless, root_tag);
    for (const auto& t : p.tags) ++p.nodes_per_tag[t];
    return p;
}

/// Reads the exporter's module table (tools/htp_exporter.py, "modules" array).
inline std::vector<traced_module> traced_modules_from_json(const nlohmann::json& doc) {
    std::vector<traced_module> out;
    for (const auto& m : doc.at("modules")) {
        traced_module t;
        t.path = m.at("path").get<std::string>();
        t.class_name = m.at("class").get<std::string>();
        t.torch_module = m.value("torch_module", false);
        if (m.contains("order") && m["order"].is_number_integer()) t.order = m["order"].get<int>();
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace modelexport
