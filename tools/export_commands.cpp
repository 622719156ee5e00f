// The subcommands that run or key an export: export, cache, plan (tools/commands.hpp). Apart
// from the command line's file (tools/modelexport.cpp) so that it parses none of the pipeline's
// headers, and from the package commands (tools/package_commands.cpp) so that both compile in parallel.
#include "commands.hpp"

#include "modelexport/cache/export_cache.hpp"
#include "modelexport/export/build_edge.hpp"
#include "modelexport/export/progress.hpp"
#include "modelexport/plan.hpp"

#include <algorithm>
#include <iostream>
#include <optional>

namespace tool {

namespace me = modelexport;

namespace {

int run_cache_action(const std::string& action, const me::export_options& eo, const std::string& max_size,
                     long wait_limit, const output_mode& mode) {
    me::local_cache cache(eo.cache.dir);
    if (action == "key") {
        std::optional<me::key_record> record;
        try {
            record = me::export_cache_key(eo);
        } catch (const me::cache_key_error& e) {
            throw me::export_failed("cache key", e.what());
        }
        if (!record) {
            std::cout << "prebuilt: not cached (the export is already a copy of the source's ONNX)\n";
            return 0;
        }
        std::cout << record->text() << "key " << record->key() << "\n";
        return 0;
    }
    if (action == "stats") {  // what is stored now; stores still running are counted, not waited for
        auto st = cache.stats();
        std::size_t running = cache.running_stores();
        if (mode.json)
            std::cout << me::to_canonical_text(me::json{{"dir", cache.root().string()},
                                                        {"entries", st.entries},
                                                        {"objects", st.objects},
                                                        {"bytes", st.bytes},
                                                        {"max_size", eo.cache.max_size},
                                                        {"running_stores", running}});
        else
            std::cout << cache.root().string() << ": " << st.entries << " exports, " << st.objects << " objects, "
                      << st.bytes << " bytes (limit " << eo.cache.max_size << "), " << running << " background store"
                      << (running == 1 ? "" : "s") << " running\n";
        return 0;
    }
    // A background store still copying or uploading is part of the cache: the rest wait for it first.
    // At most about 100 years (parse_timeout's bound): a deadline of 12 digits of seconds overflows the clock.
    constexpr long longest_wait = 100L * 365 * 24 * 3600;
    auto [waited, left] =
        cache.wait_for_stores(std::chrono::seconds(action == "wait" ? std::min(wait_limit, longest_wait) : 0));
    if (action == "wait") {
        if (!mode.quiet)
            std::cout << "waited for " << waited << " background store" << (waited == 1 ? "" : "s") << "\n";
        if (left)  // a cache never fails a build: the stores go on, the command says so and succeeds
            std::cerr << "modelexport: warning: " << left << " background store" << (left == 1 ? "" : "s")
                      << " still running after " << wait_limit << " s (" << cache.root().string()
                      << "/store.log says what they did)\n";
        return 0;
    }
    if (action == "prune") {
        const std::uintmax_t limit =
            max_size.empty() ? eo.cache.max_size : *me::parse_size(max_size);  // checked when parsed
        std::uintmax_t freed = cache.prune(limit);
        if (!mode.quiet) std::cout << "freed " << freed << " bytes\n";
        return 0;
    }
    if (action == "clear") {
        cache.clear();
        return 0;
    }
    auto r = cache.verify();  // verify
    if (!mode.quiet)
        std::cout << r.objects << " objects (" << r.bad_objects << " corrupt, removed), " << r.entries << " exports ("
                  << r.broken_entries << " incomplete, removed)\n";
    return 0;
}

}  // namespace

int run_export(const me::export_options& base, const me::build_edge& edge, const output_mode& mode) {
    me::export_options opt = base;
    auto display = std::make_shared<me::progress_display>(me::console_style::detect(mode.quiet, mode.verbose));
    opt.on_step = [display](const me::step_event& e) { display->on_step(e); };
    opt.log = [display](const std::string& m) { display->note(m); };
    if (!mode.quiet && mode.verbose)
        opt.exporter_line = [display](const std::string& l, bool) { display->child_line(l); };
    auto r = me::export_for_build(opt, edge);
    if (mode.json)
        std::cout << me::to_canonical_text(r.metadata);
    else if (!mode.quiet)
        std::cout << r.package.string() << "\n";
    return 0;
}

/// `modelexport cache ...`: the local export cache (docs/design.md §10). A cache directory
/// that is refused (a link or a special file where it keeps something) is an I/O error here:
/// an export only misses, but the maintenance commands say why they cannot work on it.
int run_cache(const std::string& action, const me::export_options& eo, const std::string& max_size, long wait_limit,
              const output_mode& mode) {
    try {
        return run_cache_action(action, eo, max_size, wait_limit, mode);
    } catch (const me::cache_error& e) {
        throw me::io_error(eo.cache.dir.string(), std::string("the export cache is refused: ") + e.what());
    }
}

int run_plan(const me::plan_options& po) {
    std::cout << me::to_canonical_text(me::to_json(me::plan_package(po)));
    return 0;
}

}  // namespace tool
