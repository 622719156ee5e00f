// The subcommands' work, declared for the command line (tools/modelexport.cpp) and defined in
// tools/export_commands.cpp and tools/package_commands.cpp. Each returns the exit code and throws
// modelexport::error for main to print. Only light headers here: the options the command line fills.
#pragma once

#include "modelexport/export_options.hpp"
#include "modelexport/plan.hpp"
#include "modelexport/validate/runtime_config.hpp"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace tool {

namespace fs = std::filesystem;

struct output_mode {
    bool quiet = false;
    bool verbose = false;
    bool json = false;
    /// Progress goes to a terminal only, or anywhere with --verbose; never with --quiet.
    bool progress() const { return !quiet && (verbose || ::isatty(STDERR_FILENO)); }
};

int run_export(const modelexport::export_options& opt, const modelexport::build_edge& edge, const output_mode& mode);

/// validate; --reference runs the exporter's interpreter and script of `exporter`.
int run_validate(const fs::path& dir, const std::string& task, bool strict, const std::string& runtime_name,
                 const modelexport::runtime_config& rcfg, const output_mode& mode, const fs::path& report_path,
                 const std::string& reference, const modelexport::export_options& exporter);

int run_inspect(const fs::path& path, const std::string& format, const output_mode& mode);
int run_verify(const fs::path& dir, const std::vector<std::string>& ignore, const output_mode& mode);

/// `modelexport cache ACTION`; `key` takes the export's options `eo`.
int run_cache(const std::string& action, const modelexport::export_options& eo, const std::string& max_size,
              long wait_limit, const output_mode& mode);

int run_plan(const modelexport::plan_options& po);

/// The C++ namespace named after a package directory (bindings and embed without --namespace).
std::string namespace_for(const fs::path& dir);

int run_bindings(const fs::path& dir, const std::string& ns, const fs::path& header, const fs::path& files_header);
int run_embed(const fs::path& dir, const std::string& ns, const fs::path& output, const fs::path& header);
int run_pack(const fs::path& dir, const fs::path& output);
int run_unpack(const fs::path& file, const fs::path& outdir);

}  // namespace tool
