// modelexport/inspect.hpp — a package (or a bare model.onnx) described for people.
#pragma once

#include "modelexport/hierarchy.hpp"
#include "modelexport/json_file.hpp"
#include "modelexport/onnx_model.hpp"

#include <map>
#include <ostream>
#include <string>

namespace modelexport {

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
        if (slash == 0) roots.push_back(tag);
        else children[tag.substr(0, slash)].push_back(tag);
    }
    std::function<void(const std::string&, const std::string&, bool, bool)> draw = [&](const std::string& tag, const std::string& prefix,
                                                                                      bool last, bool root) {
        std::string name = tag.substr(tag.rfind('/') + 1);
        out << (root ? "" : prefix + (last ? "└── " : "├── ")) << name << " (" << totals[tag] << " nodes)\n";
        const auto& kids = children[tag];
        for (std::size_t i = 0; i < kids.size(); ++i)
            draw(kids[i], root ? "" : prefix + (last ? "    " : "│   "), i + 1 == kids.size(), false);
    };
    for (const auto& r : roots) draw(r, "", true, true);
}

}  // namespace modelexport
