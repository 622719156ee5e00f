// modelexport/package/inspect.hpp — a package (or a bare model.onnx) described for people.
#pragma once

#include "modelexport/detail/json_file.hpp"
#include "modelexport/onnx/hierarchy.hpp"
#include "modelexport/onnx/hierarchy_embed.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/onnx/project.hpp"
#include "modelexport/onnx/stream.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace modelexport {

/// The metadata as one ONNX file of a multi-file package sees it: its `models.<file>` section's
/// nodes replace the top level's (the primary's). Single-file metadata is returned as it is.
inline json metadata_for_file(json meta, const std::string& file) {
    if (meta.is_object() && meta.contains("models") && meta["models"].is_object() && meta["models"].contains(file) &&
        meta["models"][file].is_object() && meta["models"][file].contains("nodes"))
        meta["nodes"] = meta["models"][file]["nodes"];
    return meta;
}

/// How deep and how long a tag inspect shows. A generated or hostile node name with thousands of
/// scope components would otherwise print a line per level indented by its depth, and a DOT or
/// GraphML id per ancestor holding the whole path: output growing with the square of the depth.
inline constexpr std::size_t shown_depth = 64;
inline constexpr std::size_t shown_name_bytes = 256;

/// Node counts per hierarchy tag as inspect shows them, and how many tags were cut to the bounds.
struct shown_hierarchy {
    std::map<std::string, std::size_t> nodes_per_tag;
    std::size_t cut = 0;
};

/// `tag` ("/BertModel/BertEncoder/...") with at most shown_depth components of at most
/// shown_name_bytes each ("..." marks a cut name; the deepest kept level takes the nodes below it).
inline std::string shown_tag(const std::string& tag, bool& cut) {
    std::string out;
    std::size_t depth = 0, start = tag.empty() || tag[0] != '/' ? 0 : 1;
    while (start <= tag.size()) {
        std::size_t end = std::min(tag.find('/', start), tag.size());
        if (++depth > shown_depth) {
            cut = true;
            break;
        }
        std::string name = tag.substr(start, end - start);
        if (name.size() > shown_name_bytes) {
            name = name.substr(0, shown_name_bytes) + "...";
            cut = true;
        }
        out += "/" + name;
        start = end + 1;
    }
    return out;
}

/// Nodes per hierarchy tag of a model: its embedded tags, else the package
/// metadata's, else projected from scope names now; cut to what inspect shows.
inline shown_hierarchy nodes_per_tag(const onnx::ModelProto& model, const json& meta) {
    std::map<std::string, std::size_t> per_tag;
    auto embedded = embedded_hierarchy_tags(model.graph());
    if (!embedded.empty()) {
        for (const auto& [i, t] : embedded) ++per_tag[t];
    } else if (meta.contains("nodes") && !meta["nodes"].empty()) {
        for (const auto& [k, t] : meta["nodes"].items()) ++per_tag[t.get<std::string>()];
    } else {
        std::string root = meta.contains("model") ? meta["model"].value("class", "Model") : "Model";
        per_tag = project_hierarchy(node_views(model.graph()), {}, root).nodes_per_tag;
    }
    shown_hierarchy shown;
    for (const auto& [tag, n] : per_tag) {
        bool cut = false;
        shown.nodes_per_tag[shown_tag(tag, cut)] += n;
        shown.cut += cut;
    }
    return shown;
}

/// Node counts per hierarchy tag, including every ancestor level, for a tree view.
inline std::map<std::string, std::size_t> subtree_counts(const std::map<std::string, std::size_t>& nodes_per_tag) {
    std::map<std::string, std::size_t> totals;
    for (const auto& [tag, n] : nodes_per_tag) {
        std::string t = tag;
        while (!t.empty()) {
            totals[t] += n;
            auto slash = t.rfind('/');
            t = slash == 0 || slash == std::string::npos ? std::string() : t.substr(0, slash);
        }
    }
    return totals;
}

/// Prints tags as a tree, like `tree`: "├── BertLayer.0 (84 nodes)".
inline void print_tree(std::ostream& out, const std::map<std::string, std::size_t>& nodes_per_tag) {
    auto totals = subtree_counts(nodes_per_tag);
    std::map<std::string, std::vector<std::string>> children;
    std::vector<std::string> roots;
    for (const auto& [tag, n] : totals) {
        auto slash = tag.rfind('/');
        if (slash == 0)
            roots.push_back(tag);
        else
            children[tag.substr(0, slash)].push_back(tag);
    }
    std::function<void(const std::string&, const std::string&, bool, bool)> draw =
        [&](const std::string& tag, const std::string& prefix, bool last, bool root) {
            std::string name = tag.substr(tag.rfind('/') + 1);
            out << (root ? "" : prefix + (last ? "└── " : "├── ")) << printable(name) << " (" << totals[tag]
                << " nodes)\n";  // names from the model: no terminal control
            const auto& kids = children[tag];
            for (std::size_t i = 0; i < kids.size(); ++i)
                draw(kids[i], root ? "" : prefix + (last ? "    " : "│   "), i + 1 == kids.size(), false);
        };
    for (const auto& r : roots) draw(r, "", true, true);
}

}  // namespace modelexport

namespace modelexport {

namespace detail {

/// Every tag with its parent, for the graph formats (parents before children).
inline std::vector<std::pair<std::string, std::string>> tag_edges(const std::map<std::string, std::size_t>& totals) {
    std::vector<std::pair<std::string, std::string>> edges;
    for (const auto& [tag, n] : totals) {
        auto slash = tag.rfind('/');
        if (slash != 0 && slash != std::string::npos) edges.emplace_back(tag.substr(0, slash), tag);
    }
    return edges;
}

/// XML 1.0 allows no control characters but tab, LF and CR (not even as &#N;),
/// and a name may hold any bytes: control characters and bytes that are not
/// UTF-8 become \xNN text first (printable()), then the markup characters are escaped.
inline std::string xml_escape(const std::string& s) {
    std::string out;
    for (char c : printable(s)) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

/// A DOT quoted string: control characters (newlines) and non-UTF-8 bytes as \xNN
/// text (printable()), then quotes and backslashes escaped.
inline std::string dot_escape(const std::string& s) {
    std::string out;
    for (char c : printable(s)) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

}  // namespace detail

/// The module hierarchy as Graphviz DOT: one box per module with its node count.
inline std::string hierarchy_dot(const std::map<std::string, std::size_t>& nodes_per_tag, const std::string& title) {
    auto totals = subtree_counts(nodes_per_tag);
    std::ostringstream out;
    out << "digraph hierarchy {\n  label=\"" << detail::dot_escape(title) << "\";\n  labelloc=t;\n  rankdir=LR;\n"
        << "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", fontname=\"Helvetica\"];\n";
    for (const auto& [tag, n] : totals) {
        std::string name = tag.substr(tag.rfind('/') + 1);
        out << "  \"" << detail::dot_escape(tag) << "\" [label=\"" << detail::dot_escape(name) << "\\n"
            << n << " nodes\"];\n";
    }
    for (const auto& [parent, child] : detail::tag_edges(totals))
        out << "  \"" << detail::dot_escape(parent) << "\" -> \"" << detail::dot_escape(child) << "\";\n";
    out << "}\n";
    return out.str();
}

/// The same as GraphML, for yEd, Gephi or networkx.
inline std::string hierarchy_graphml(const std::map<std::string, std::size_t>& nodes_per_tag) {
    auto totals = subtree_counts(nodes_per_tag);
    std::ostringstream out;
    out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        << "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n"
        << "  <key id=\"name\" for=\"node\" attr.name=\"name\" attr.type=\"string\"/>\n"
        << "  <key id=\"nodes\" for=\"node\" attr.name=\"onnx_nodes\" attr.type=\"int\"/>\n"
        << "  <graph id=\"hierarchy\" edgedefault=\"directed\">\n";
    for (const auto& [tag, n] : totals)
        out << "    <node id=\"" << detail::xml_escape(tag) << "\"><data key=\"name\">"
            << detail::xml_escape(tag.substr(tag.rfind('/') + 1)) << "</data><data key=\"nodes\">" << n
            << "</data></node>\n";
    std::size_t i = 0;
    for (const auto& [parent, child] : detail::tag_edges(totals))
        out << "    <edge id=\"e" << i++ << "\" source=\"" << detail::xml_escape(parent) << "\" target=\""
            << detail::xml_escape(child) << "\"/>\n";
    out << "  </graph>\n</graphml>\n";
    return out.str();
}

}  // namespace modelexport
